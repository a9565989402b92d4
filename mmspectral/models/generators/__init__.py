from .sampling import cfg_weight, filter_logits, guide, sample_tokens
from .spectral_ar import PRESETS, SpectralARGenerator

__all__ = ['SpectralARGenerator', 'PRESETS', 'cfg_weight', 'guide', 'filter_logits', 'sample_tokens']
