from mmspectral.registry import ATTN_MASKS
from mmspectral.utils import build_component
from .attn_masks import BaseAttnMask, BidirectionalMask, BlockCausalMask, SpectralCausalMask


def build_attn_mask(cfg):
    """Build a mask builder from a config dict, or pass one through."""
    return build_component(cfg, ATTN_MASKS, expected_type=BaseAttnMask)


__all__ = ['BaseAttnMask', 'BidirectionalMask', 'SpectralCausalMask', 'BlockCausalMask', 'build_attn_mask']
