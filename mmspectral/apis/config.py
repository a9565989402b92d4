"""Config loading and Runner building shared by the tools."""
import difflib
import inspect
import os
import os.path as osp
import sys
from collections.abc import Mapping
from typing import Optional

from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.utils import import_modules_from_strings

from mmspectral.registry import RUNNERS, registry_hints
from .setup_env import register_all_modules

#: Top-level keys a config may gain through an override (the Runner's arguments), however close their
#: spelling is to a key it has (``val_dataloader`` beside ``train_dataloader``).
_RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file, with ``custom_imports`` resolved from the current directory and the
    config's folder.

    ``custom_imports`` given or changed through ``cfg_options`` are imported too (MMEngine imports only those
    of the file), so ``--cfg-options custom_imports.imports=[my_pkg]`` registers a user's components.

    Args:
        path: the config file.
        cfg_options: ``key.sub=value`` overrides, as ``--cfg-options`` gives them; one through a misspelt
            section is refused (:func:`check_cfg_options`).
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
        check_cfg_options(cfg, cfg_options, path)
        cfg.merge_from_dict(cfg_options)
        if any(key.split('.')[0] == 'custom_imports' for key in cfg_options) and cfg.get('custom_imports'):
            with registry_hints():
                import_modules_from_strings(**cfg.custom_imports)
    return cfg


def check_cfg_options(cfg: Mapping, cfg_options: Mapping, path: str = 'the config') -> None:
    """Refuse an override that passes through a section the config lacks but nearly has (a misspelt
    ``model.genrator.depth=2`` or ``trian_dataloader.batch_size=8``): merged, it would make a new section that
    nothing reads and the run would go on with the old value. Sections the config lacks and nearly has by
    no spelling are new on purpose (``custom_imports.imports=[...]``) and pass; a misspelt last key is
    left to the component that takes it (building refuses an argument it does not know)."""
    if not isinstance(cfg_options, Mapping):
        raise TypeError('cfg_options must be a dict of KEY=VALUE overrides, got '
                        f'{type(cfg_options).__name__}.')
    root = cfg.to_dict() if isinstance(cfg, Config) else cfg
    for key in cfg_options:
        node, parts = root, str(key).split('.')
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not isinstance(node, Mapping) or part in node:
                node = node.get(part) if isinstance(node, Mapping) else None
                continue
            names = [k for k in node if isinstance(k, str)]
            close = difflib.get_close_matches(part, names, n=1, cutoff=0.85)
            if close and not (depth == 0 and part in _RUNNER_KEYS):
                where = '.'.join(parts[:depth])
                raise ValueError(
                    f'--cfg-options {key}: {path} has no {".".join(parts[:depth + 1])} (did you mean '
                    f'{".".join(parts[:depth] + close)}?). The override would make a new section that '
                    'nothing reads, and the run would keep the old value. Correct the key'
                    + (f' (the keys of {where}: {sorted(names)})' if where else '') + '.')
            break


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


def build_runner(cfg: Config, mode: str = 'train'):
    """Build the config's Runner (``runner_type``, default ``SpectralRunner``), checked, with helpful registry
    errors. This is where the checks run, once, for the tools and for Python alike.

    Before anything is built, :func:`mmspectral.engine.check_config` reads the sections a ``mode`` run uses
    ('train': the model, the training split and the validation split when it is complete; 'test': the model
    and the test split; 'model': the model only) and raises one ``ConfigCheckError`` listing every problem.
    Once the Runner is built, before it reads any data, the checkpoint it is about to load (``load_from``,
    or the newest one for ``resume``) must fit the model (``CheckpointLoadError`` otherwise). A config with
    ``skip_checks=True`` (tools/train.py ``--skip-checks``) builds without either.
    """
    from mmspectral.engine import check_config, check_runner_checkpoint
    register_all_modules(init_default_scope=False)
    if 'runner_type' not in cfg:
        cfg.runner_type = 'SpectralRunner'
    checked = not cfg.get('skip_checks', False)
    if checked:
        check_config(cfg, mode=mode)
    with registry_hints():
        runner = RUNNERS.build(cfg)
    if checked:
        check_runner_checkpoint(runner)
    return runner
