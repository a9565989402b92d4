"""``SpectralRunner``: MMEngine's Runner with the fixes mmspectral needs on current torch and on CPUs.

* distributed set-up: gloo when there is no GPU, and DDP without ``device_ids`` for CPU models;
* resume / ``load_from``: every checkpoint, the Runner's own included, loads with ``weights_only=True``
  unless the user trusts the file (``--trust-checkpoint`` / ``trust_checkpoints``; see
  :mod:`mmspectral.fileio.weights`);
* ``resume='auto'`` (``resume=True`` without ``load_from``) finds the newest checkpoint even when the work dir
  was moved (``last_checkpoint`` stores an absolute path);
* an unknown ``type`` anywhere in the config is reported with the closest registered names;
* checkpoints are written atomically (a temporary file, then one rename), and ``resume='auto'`` skips a torn
  newest checkpoint, with a warning, in favour of the newest complete one;
* exact resume: checkpoints carry the python / numpy / torch (and CUDA) RNG states of every rank, put back
  just before the first new batch is read, and validation leaves the training RNG streams as it found them, so
  a resumed run draws the same dropout masks, augmentations and batches as an uninterrupted one;
* a collective that times out in ``train()`` names the ranks that never reached it (:mod:`.heartbeat`).

Configs select it with ``runner_type = 'SpectralRunner'`` (in ``configs/_base_/default_runtime.py``).
"""
import copy
import logging
import os.path as osp
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from torch.nn.parallel import DistributedDataParallel

from mmspectral.datasets import SkipCorruptMixin, skipped_images_summary
from mmspectral.registry import MODEL_WRAPPERS, RUNNERS, registry_hints
from .checkpoint import atomic_write_path, trust_files
from .dist import init_distributed, set_tf32
from .heartbeat import collectives_watched
from .resume import ExactResumeMixin

__all__ = ['SpectralRunner', 'RegistryHintsLoopsMixin']


class _FrozenParamCounter(logging.Filter):
    """Drops MMEngine's per-parameter 'is skipped since its requires_grad=False' warnings and counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if 'is skipped since its requires_grad=False' in record.getMessage():
            self.count += 1
            return False
        return True


@contextmanager
def frozen_params_summarised() -> Iterator[None]:
    """While an optimizer is built, one line for the frozen parameters instead of one warning each.

    MMEngine's optimizer constructor warns for every parameter with ``requires_grad=False`` when a
    ``paramwise_cfg`` is set: hundreds of lines for a frozen pixel decoder or perceptual network.
    """
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    counter = _FrozenParamCounter()
    logger.addFilter(counter)
    try:
        yield
    finally:
        logger.removeFilter(counter)
        if counter.count:
            print_log(f'{counter.count} frozen parameters (requires_grad=False) are left out of the '
                      'optimizer.', logger='current')


SKIPPED_IMAGES_FILE = 'skipped_images.txt'
_MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger', 'param_scheduler', 'checkpoint')


class RegistryHintsLoopsMixin:
    """``val()`` and ``test()`` under :func:`registry_hints`: an unknown ``type`` met while the loops build
    their parts names the closest registered ones; any default hook can be turned off with None. Shared by
    SpectralRunner and SpectralFlexibleRunner."""

    def val(self) -> dict:
        with registry_hints():
            return super().val()

    def test(self) -> dict:
        with registry_hints():
            return super().test()

    def build_dataloader(self, dataloader, seed: int = 0, diff_rank_seed: bool = False):
        """MMEngine's (a static method there), plus: a training dataset that skips unreadable images lists
        them in ``<work_dir>/skipped_images.txt``, from every worker, for the summary at the end."""
        loader = super().build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        dataset = getattr(loader, 'dataset', None)
        if isinstance(dataset, SkipCorruptMixin) and not dataset.test_mode and getattr(self, 'work_dir', ''):
            dataset.skip_record = osp.join(self.work_dir, SKIPPED_IMAGES_FILE)
        return loader

    def report_skipped_images(self) -> None:
        """Log how many distinct unreadable images training skipped (all workers together), if any."""
        summary = skipped_images_summary(osp.join(self.work_dir, SKIPPED_IMAGES_FILE))
        if summary and is_main_process():
            self.logger.warning(summary)

    def register_default_hooks(self, hooks=None) -> None:
        # ``default_hooks.<name> = None`` turns a default hook off; MMEngine allows it only for its own six
        # (mmspectral's defaults add nonfinite_loss), and asserts on the others.
        super().register_default_hooks({k: v for k, v in (hooks or {}).items() if v is not None
                                        or k in _MMENGINE_DEFAULT_HOOKS})


@RUNNERS.register_module()
class SpectralRunner(RegistryHintsLoopsMixin, ExactResumeMixin, Runner):
    """MMEngine Runner plus CPU-distributed, checkpoint-loading and error-message fixes (module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        # the model is built here: a tokenizer_checkpoint the config trusts loads with full unpickling
        with registry_hints(), trust_files((kwargs.get('cfg') or {}).get('trust_checkpoints')):
            super().__init__(*args, **kwargs)

    @classmethod
    def from_cfg(cls, cfg) -> 'SpectralRunner':
        with registry_hints():
            return super().from_cfg(cfg)

    def setup_env(self, env_cfg: dict) -> None:
        if self.distributed:
            dist_cfg = dict(env_cfg.get('dist_cfg', {}) or {})
            init_distributed(self.launcher, **dist_cfg)
        if env_cfg.get('allow_tf32') is not None:  # env_cfg=dict(allow_tf32=True): TF32 matmuls on Ampere+
            set_tf32(env_cfg['allow_tf32'])
        super().setup_env(env_cfg)

    def build_optim_wrapper(self, optim_wrapper):
        with frozen_params_summarised():
            return super().build_optim_wrapper(optim_wrapper)

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

    def save_checkpoint(self, out_dir: str, filename: str, file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True,
                        meta: Optional[dict] = None, by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """MMEngine's ``save_checkpoint`` plus the RNG states of every rank in ``meta['rng_states']``, written
        to ``<filename>.tmp`` and renamed into place (local files).

        Every rank must call it, as CheckpointHook does: the RNG states are gathered from all of them.
        """
        kwargs, local = self._checkpoint_kwargs(out_dir, file_client_args, meta, backend_args,
                                                save_optimizer=save_optimizer,
                                                save_param_scheduler=save_param_scheduler, by_epoch=by_epoch)
        if not is_main_process():
            return
        if not local:
            super().save_checkpoint(out_dir, filename, file_client_args, **kwargs)
            return
        with atomic_write_path(osp.join(out_dir, filename)) as tmp:
            super().save_checkpoint(osp.dirname(tmp), osp.basename(tmp), None, **kwargs)

    def train(self) -> torch.nn.Module:
        # the config and checkpoint checks ran when mmspectral.apis.build_runner built this runner
        with registry_hints(), collectives_watched(self):
            model = super().train()
        self.report_skipped_images()
        return model
