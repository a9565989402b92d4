from .checkpoint import CheckpointLoadError, load_torch_file, trusted_checkpoints
from .dist import default_backend, init_distributed, setup_worker, shutdown_distributed
from .hooks import SpectralReconstructionHook
from .optim_constructor import MultiOptimWrapperConstructor
from .optim_wrapper import AutocastOptimWrapper
from .runner import SpectralRunner, find_latest_checkpoint

__all__ = ['SpectralReconstructionHook', 'SpectralRunner', 'find_latest_checkpoint', 'init_distributed', 'default_backend', 'shutdown_distributed', 'setup_worker',
           'AutocastOptimWrapper', 'MultiOptimWrapperConstructor', 'trusted_checkpoints', 'load_torch_file', 'CheckpointLoadError']

from .loops import GenerationTestLoop, GenerationValLoop, generate_for_metrics  # noqa: E402

__all__ += ['GenerationValLoop', 'GenerationTestLoop', 'generate_for_metrics']
