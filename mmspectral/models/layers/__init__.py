from .attention import Attention, StaticKVCache
from .blocks import AdaLNBlock, TransformerBlock

__all__ = ['Attention', 'StaticKVCache', 'TransformerBlock', 'AdaLNBlock']
