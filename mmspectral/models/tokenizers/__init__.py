from .loading import compare_state_dicts, load_tokenizer
from .maskgit_vqgan import MaskGITVQGAN
from .titok import ARCH_SETTINGS, NestedSpectralTokenizer, PrefixSampler, TiTokTokenizer
from .vit_codec import ViTTokenDecoder, ViTTokenEncoder

__all__ = ['load_tokenizer', 'compare_state_dicts', 'MaskGITVQGAN', 'TiTokTokenizer', 'NestedSpectralTokenizer', 'PrefixSampler', 'ARCH_SETTINGS', 'ViTTokenEncoder',
           'ViTTokenDecoder']
