from .vector_quantizer import VectorQuantizer

__all__ = ['VectorQuantizer']
