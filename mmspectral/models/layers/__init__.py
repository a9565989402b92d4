from .attention import Attention
from .blocks import TransformerBlock

__all__ = ['Attention', 'TransformerBlock']
