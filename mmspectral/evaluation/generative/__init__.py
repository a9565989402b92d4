"""Generative-image metrics the field reports: FID, sFID, Inception Score, precision and recall (k = 3), on
features from a registered extractor (``FEATURE_EXTRACTORS``; the FID Inception network by default)."""
from .evaluate import evaluate_feature_sets, features_from_npz
from .extractors import (BaseFeatureExtractor, InceptionV3FID, TorchModuleExtractor, build_feature_extractor,
                         images_to_unit_tensor)
from .inception import (FID_WEIGHTS_FILE, FIDInceptionV3, MissingFeatureWeightsError,
                        load_fid_inception_weights)
from .npz_io import NpzFormatError, iter_npz_images, load_feature_set, npz_arrays, save_feature_set
from .statistics import (FeatureSet, feature_statistics, frechet_distance, frechet_distance_from_features,
                         inception_score, manifold_radii, precision_recall)

__all__ = ['BaseFeatureExtractor', 'InceptionV3FID', 'TorchModuleExtractor', 'build_feature_extractor',
           'images_to_unit_tensor', 'FIDInceptionV3', 'FID_WEIGHTS_FILE', 'MissingFeatureWeightsError',
           'load_fid_inception_weights', 'NpzFormatError', 'npz_arrays', 'iter_npz_images',
           'save_feature_set', 'load_feature_set', 'FeatureSet', 'feature_statistics', 'frechet_distance',
           'frechet_distance_from_features', 'inception_score', 'manifold_radii', 'precision_recall',
           'features_from_npz', 'evaluate_feature_sets']
