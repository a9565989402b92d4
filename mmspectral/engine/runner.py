"""``SpectralRunner``: MMEngine's Runner with the fixes mmspectral needs on current torch and on CPUs.

* distributed set-up: gloo when there is no GPU, and DDP without ``device_ids`` for CPU models;
* resume / ``load_from``: the Runner's own checkpoints load with ``weights_only=False``
  (see :mod:`mmspectral.engine.checkpoint`); other weights stay ``weights_only=True``;
* ``resume='auto'`` (``resume=True`` without ``load_from``) finds the newest checkpoint even when the work dir
  was moved (``last_checkpoint`` stores an absolute path);
* an unknown ``type`` anywhere in the config is reported with the closest registered names.

Configs select it with ``runner_type = 'SpectralRunner'`` (in ``configs/_base_/default_runtime.py``).
"""
import copy
import glob
import os.path as osp
import re
from typing import Optional

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from torch.nn.parallel import DistributedDataParallel

from mmspectral.registry import MODEL_WRAPPERS, RUNNERS, registry_hints
from .checkpoint import trusted_checkpoints
from .dist import init_distributed

__all__ = ['SpectralRunner', 'find_latest_checkpoint']

_CKPT_RE = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def find_latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint to resume from in ``work_dir``, or None.

    Reads ``last_checkpoint``; if the path it stores no longer exists (the work dir was moved or copied), the
    file of the same name inside ``work_dir`` is used. Without a usable record, the ``iter_N.pth`` /
    ``epoch_N.pth`` with the largest N wins. Files being written (``*.tmp``) are never chosen.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(record):
        with open(record) as f:
            last = f.read().strip()
        for candidate in (last, osp.join(work_dir, osp.basename(last))):
            if last and osp.isfile(candidate):
                return candidate
    found = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        match = _CKPT_RE.match(osp.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


@RUNNERS.register_module()
class SpectralRunner(Runner):
    """MMEngine Runner plus CPU-distributed, checkpoint-loading and error-message fixes (module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        with registry_hints():
            super().__init__(*args, **kwargs)

    @classmethod
    def from_cfg(cls, cfg) -> 'SpectralRunner':
        with registry_hints():
            return super().from_cfg(cfg)

    def setup_env(self, env_cfg: dict) -> None:
        if self.distributed:
            dist_cfg = dict(env_cfg.get('dist_cfg', {}) or {})
            init_distributed(self.launcher, **dist_cfg)
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[dict], model: torch.nn.Module):
        if self.distributed and not is_model_wrapper(model) and not torch.cuda.is_available():
            # DDP rejects device_ids for CPU modules, and MMEngine always passes [LOCAL_RANK].
            cfg = copy.deepcopy(dict(model_wrapper_cfg or {}))
            cfg.setdefault('type', 'MMDistributedDataParallel')
            wrapper_cls = MODEL_WRAPPERS.get(cfg['type'])
            if isinstance(wrapper_cls, type) and issubclass(wrapper_cls, DistributedDataParallel):
                cfg['device_ids'] = None
                cfg.setdefault('broadcast_buffers', False)
                cfg.setdefault('find_unused_parameters', self.cfg.get('find_unused_parameters', False))
            model_wrapper_cfg = cfg
        return super().wrap_model(model_wrapper_cfg, model)

    def load_or_resume(self) -> None:
        if self._resume and self._load_from is None and not self._has_loaded:
            latest = find_latest_checkpoint(self.work_dir)
            if latest is None:
                self.logger.info(f'resume=auto: no checkpoint in {self.work_dir} yet, starting from scratch.')
            self._load_from = latest
            if latest is None:
                self._resume = False
        super().load_or_resume()

    def resume(self, filename: str, *args, **kwargs) -> None:
        with trusted_checkpoints():
            super().resume(filename, *args, **kwargs)

    def load_checkpoint(self, filename: str, *args, **kwargs):
        with trusted_checkpoints():
            return super().load_checkpoint(filename, *args, **kwargs)

    def train(self) -> torch.nn.Module:
        with registry_hints():
            return super().train()

    def val(self) -> dict:
        with registry_hints():
            return super().val()

    def test(self) -> dict:
        with registry_hints():
            return super().test()
