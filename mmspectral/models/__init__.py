from . import masks  # noqa: F401
from .data_preprocessor import ImageDataPreprocessor
from .layers import Attention, TransformerBlock
from .masks import BidirectionalMask, BlockCausalMask, SpectralCausalMask, build_attn_mask

__all__ = ['ImageDataPreprocessor', 'Attention', 'TransformerBlock', 'BidirectionalMask', 'SpectralCausalMask', 'BlockCausalMask',
           'build_attn_mask']
