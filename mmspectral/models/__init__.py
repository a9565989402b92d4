from . import algorithms, generators, losses, masks, quantizers, tokenizers  # noqa: F401
from .algorithms import GeneratorModel, TokenizerModel
from .data_preprocessor import ImageDataPreprocessor
from .generators import SpectralARGenerator
from .layers import Attention, TransformerBlock
from .losses import ConvNeXtPerceptualLoss, GANLoss, LPIPSLoss, PatchGANDiscriminator
from .masks import BidirectionalMask, BlockCausalMask, SpectralCausalMask, build_attn_mask
from .quantizers import VectorQuantizer
from .tokenizers import NestedSpectralTokenizer, TiTokTokenizer

__all__ = ['ImageDataPreprocessor', 'Attention', 'TransformerBlock', 'BidirectionalMask',
           'SpectralCausalMask', 'BlockCausalMask', 'build_attn_mask', 'VectorQuantizer', 'TiTokTokenizer',
           'NestedSpectralTokenizer', 'TokenizerModel', 'GANLoss', 'PatchGANDiscriminator',
           'ConvNeXtPerceptualLoss', 'LPIPSLoss', 'SpectralARGenerator', 'GeneratorModel']
