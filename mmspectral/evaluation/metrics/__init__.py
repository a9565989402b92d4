from .reconstruction import ReconstructionMetric
from .token_prediction import TokenPredictionMetric

__all__ = ['ReconstructionMetric', 'TokenPredictionMetric']

from .generation import GenerationMetric, ReconstructionFIDMetric  # noqa: E402

__all__ += ['GenerationMetric', 'ReconstructionFIDMetric']
