from .embedded_classifier import ShapesProbe
from .functional import (VISIBLE_STEP, band_psnr, blockiness, position_perplexity, progression_steps, psnr,
                         region_errors, ssim)
from .generative import (BaseFeatureExtractor, FeatureSet, InceptionV3FID, MissingFeatureWeightsError,
                         NpzFormatError, TorchModuleExtractor, build_feature_extractor, evaluate_feature_sets,
                         features_from_npz, frechet_distance, inception_score, load_feature_set,
                         precision_recall, save_feature_set)
from .metrics import ReconstructionMetric, TokenPredictionMetric

__all__ = ['psnr', 'ssim', 'blockiness', 'region_errors', 'band_psnr', 'progression_steps', 'VISIBLE_STEP',
           'position_perplexity', 'ReconstructionMetric', 'TokenPredictionMetric', 'BaseFeatureExtractor',
           'InceptionV3FID', 'TorchModuleExtractor', 'ShapesProbe', 'build_feature_extractor',
           'MissingFeatureWeightsError', 'NpzFormatError', 'FeatureSet', 'frechet_distance',
           'inception_score', 'precision_recall', 'features_from_npz', 'evaluate_feature_sets',
           'save_feature_set', 'load_feature_set']
