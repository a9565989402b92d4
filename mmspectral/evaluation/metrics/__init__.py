from .reconstruction import ReconstructionMetric

__all__ = ['ReconstructionMetric']
