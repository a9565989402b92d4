from .sampling import (DEFAULT_CFG_SCALE, SAMPLING_OPTIONS, cfg_weight, check_sampling_options, filter_logits,
                       guide, make_rng, sample_tokens)
from .spectral_ar import PRESETS, SpectralARGenerator, generate_tokens

__all__ = ['SpectralARGenerator', 'PRESETS', 'cfg_weight', 'guide', 'filter_logits', 'sample_tokens',
           'SAMPLING_OPTIONS', 'DEFAULT_CFG_SCALE', 'check_sampling_options', 'make_rng', 'generate_tokens']
