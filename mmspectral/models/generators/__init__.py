from .sampling import (SAMPLING_OPTIONS, cfg_weight, check_sampling_options, filter_logits, guide,
                       sample_tokens)
from .spectral_ar import PRESETS, SpectralARGenerator

__all__ = ['SpectralARGenerator', 'PRESETS', 'cfg_weight', 'guide', 'filter_logits', 'sample_tokens',
           'SAMPLING_OPTIONS', 'check_sampling_options']
