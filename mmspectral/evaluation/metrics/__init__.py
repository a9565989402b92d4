from .reconstruction import ReconstructionMetric
from .token_prediction import TokenPredictionMetric

__all__ = ['ReconstructionMetric', 'TokenPredictionMetric']
