from .loading import load_tokenizer
from .maskgit_vqgan import MaskGITVQGAN
from .nested_spectral import NestedSpectralTokenizer
from .titok import ARCH_SETTINGS, PrefixSampler, TiTokTokenizer
from .vit_codec import ViTTokenDecoder, ViTTokenEncoder

__all__ = ['load_tokenizer', 'MaskGITVQGAN', 'TiTokTokenizer', 'NestedSpectralTokenizer', 'PrefixSampler',
           'ARCH_SETTINGS', 'ViTTokenEncoder', 'ViTTokenDecoder']
