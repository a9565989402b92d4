"""Config loading and Runner building shared by the tools."""
import os
import os.path as osp
import sys
from typing import Optional

from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

from mmspectral.registry import RUNNERS, registry_hints
from .setup_env import register_all_modules


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file, with ``custom_imports`` resolved from the current directory and the
    config's folder.

    ``custom_imports`` given or changed through ``cfg_options`` are imported too (MMEngine imports only those
    of the file), so ``--cfg-options custom_imports.imports=[my_pkg]`` registers a user's components.

    Args:
        path: the config file.
        cfg_options: ``key.sub=value`` overrides, as ``--cfg-options`` gives them.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file {path!r} does not exist (run from the repository root, or give '
                                'the full path).')
    for folder in (osp.dirname(osp.abspath(path)), os.getcwd()):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    with registry_hints():
        cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
        if any(key.split('.')[0] == 'custom_imports' for key in cfg_options) and cfg.get('custom_imports'):
            with registry_hints():
                import_modules_from_strings(**cfg.custom_imports)
    return cfg


def trust_from_args(cfg: Config, args) -> Config:
    """Add the files of ``--trust-checkpoint`` to the config's ``trust_checkpoints``; returns ``cfg``."""
    named = cfg.get('trust_checkpoints') or []
    named = [named] if isinstance(named, str) else list(named)
    extra = list(getattr(args, 'trust_checkpoint', None) or [])
    if extra:
        cfg.trust_checkpoints = named + extra
    return cfg


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config name>``, MMEngine's convention."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg: Config):
    """Build the config's Runner (``runner_type``, default ``SpectralRunner``),
    with helpful registry errors."""
    register_all_modules(init_default_scope=False)
    if 'runner_type' not in cfg:
        cfg.runner_type = 'SpectralRunner'
    with registry_hints():
        return RUNNERS.build(cfg)
