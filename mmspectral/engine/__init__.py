from .checkpoint import CheckpointLoadError, load_torch_file, trusted_checkpoints
from .dist import default_backend, init_distributed, shutdown_distributed
from .optim_wrapper import AutocastOptimWrapper
from .runner import SpectralRunner, find_latest_checkpoint

__all__ = ['SpectralRunner', 'find_latest_checkpoint', 'init_distributed', 'default_backend', 'shutdown_distributed',
           'AutocastOptimWrapper', 'trusted_checkpoints', 'load_torch_file', 'CheckpointLoadError']
