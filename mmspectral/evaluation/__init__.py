from .functional import psnr, ssim
from .metrics import ReconstructionMetric

__all__ = ['psnr', 'ssim', 'ReconstructionMetric']
