from .checkpoint import (CheckpointLoadError, atomic_write_path, checkpoint_defect, load_torch_file,
                         trust_files)
from .dist import (DEFAULT_DIST_TIMEOUT, DIST_TIMEOUT_ENV, check_dist_timeout, default_backend, dist_timeout,
                   init_distributed, set_tf32, setup_worker, shutdown_distributed)
from .fsdp_runner import SpectralFlexibleRunner, SpectralFSDPStrategy, adaln_block_wrap_policy
from .heartbeat import CollectiveTimeoutError, collectives_watched
from .hooks import CheckpointHook, NonFiniteLossError, NonFiniteLossHook, SpectralReconstructionHook
from .loops import GenerationTestLoop, GenerationValLoop, generate_for_metrics
from .optim_constructor import MultiOptimWrapperConstructor
from .optim_wrapper import AutocastOptimWrapper, OptimWrapper
from .preflight import ConfigCheckError, check_checkpoint_fits, check_config, check_runner_checkpoint
from .resume import ExactResumeMixin, capture_rng_state, find_latest_checkpoint, restore_rng_state
from .runner import SpectralRunner
from .workdir import WorkDirBusyError, WorkDirInUseError

__all__ = [
    'SpectralRunner', 'ExactResumeMixin', 'SpectralFlexibleRunner', 'SpectralFSDPStrategy',
    'adaln_block_wrap_policy', 'set_tf32',
    'find_latest_checkpoint', 'capture_rng_state', 'restore_rng_state', 'init_distributed', 'default_backend',
    'shutdown_distributed', 'setup_worker', 'dist_timeout', 'check_dist_timeout', 'DEFAULT_DIST_TIMEOUT',
    'DIST_TIMEOUT_ENV', 'CollectiveTimeoutError', 'collectives_watched', 'AutocastOptimWrapper',
    'OptimWrapper',
    'MultiOptimWrapperConstructor',
    'trust_files', 'load_torch_file', 'CheckpointLoadError', 'atomic_write_path', 'checkpoint_defect',
    'SpectralReconstructionHook', 'CheckpointHook', 'NonFiniteLossHook', 'NonFiniteLossError',
    'GenerationValLoop', 'GenerationTestLoop', 'generate_for_metrics', 'ConfigCheckError', 'check_config',
    'check_checkpoint_fits', 'check_runner_checkpoint', 'WorkDirBusyError', 'WorkDirInUseError'
]
