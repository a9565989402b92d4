from .functional import psnr, ssim
from .metrics import ReconstructionMetric, TokenPredictionMetric

__all__ = ['psnr', 'ssim', 'ReconstructionMetric', 'TokenPredictionMetric']
