"""Config loading and Runner building shared by the tools."""
import os
import os.path as osp
import sys
from typing import Optional

from mmengine.config import Config

from mmspectral.registry import RUNNERS, registry_hints


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file, with ``custom_imports`` resolved from the current directory and the config's folder.

    Args:
        path: the config file.
        cfg_options: ``key.sub=value`` overrides, as ``--cfg-options`` gives them.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file {path!r} does not exist (run from the repository root, or give the '
                                'full path).')
    for folder in (osp.dirname(osp.abspath(path)), os.getcwd()):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    with registry_hints():
        cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config name>``, MMEngine's convention."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg: Config):
    """Build the config's Runner (``runner_type``, default ``SpectralRunner``), with helpful registry errors."""
    from mmspectral.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    if 'runner_type' not in cfg:
        cfg.runner_type = 'SpectralRunner'
    with registry_hints():
        return RUNNERS.build(cfg)
