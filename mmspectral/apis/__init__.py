"""Entry points: component registration, config loading, Runner building and inference helpers
(the top layer)."""
from .config import build_runner, default_work_dir, load_config, trust_from_args
from .inference import add_sampling_args, init_generator, sampling_options
from .setup_env import register_all_modules

__all__ = ['register_all_modules', 'load_config', 'build_runner', 'default_work_dir', 'init_generator',
           'add_sampling_args', 'sampling_options', 'trust_from_args']
