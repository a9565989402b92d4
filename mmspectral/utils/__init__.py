from .build import build_component
from .config import build_runner, default_work_dir, load_config
from .io import atomic_write, write_json
from .setup_env import register_all_modules

__all__ = ['build_component', 'register_all_modules', 'load_config', 'build_runner', 'default_work_dir', 'atomic_write',
           'write_json']
