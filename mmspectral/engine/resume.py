"""Resume: the newest complete checkpoint of a work dir, RNG states, and ``ExactResumeMixin``.

``find_latest_checkpoint`` skips torn checkpoints (a run killed while saving); ``capture_rng_state`` /
``restore_rng_state`` carry the python / numpy / torch (and CUDA) streams of every rank in a checkpoint; the
mixin, shared by SpectralRunner and SpectralFlexibleRunner, puts them back so that a resumed run continues the
same run (docs/reliability.md).
"""
import glob
import logging
import os
import os.path as osp
import random
import re
import shutil
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from mmspectral.fileio import to_plain, trust_files
from .checkpoint import TMP_SUFFIX, checkpoint_defect

__all__ = ['ExactResumeMixin', 'find_latest_checkpoint', 'capture_rng_state', 'restore_rng_state']

_CKPT_RE = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def find_latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint to resume from in ``work_dir``, or None.

    Reads ``last_checkpoint``; if the path it stores no longer exists (the work dir was moved or copied), the
    file of the same name inside ``work_dir`` is used. Without a usable record, the ``iter_N.pth`` /
    ``epoch_N.pth`` with the largest N wins. Files being written (``*.tmp``) are never chosen, and a
    checkpoint that is incomplete (see :func:`~mmspectral.engine.checkpoint.checkpoint_defect`) is skipped
    with a warning naming it, in favour of the next newest.
    """
    candidates = []
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(record):
        with open(record) as f:
            last = f.read().strip()
        if last:
            candidates += [last, osp.join(work_dir, osp.basename(last))]
    numbered = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        match = _CKPT_RE.match(osp.basename(path))
        if match:
            numbered.append((int(match.group(1)), path))
    candidates += [path for _, path in sorted(numbered, reverse=True)]
    seen = set()
    for path in candidates:
        key = osp.realpath(path)
        if key in seen or not osp.exists(path):
            continue
        seen.add(key)
        defect = checkpoint_defect(path) if osp.isfile(path) else None  # a folder: DeepSpeed's layout
        if defect is None:
            return path
        print_log(f'resume=auto: skipping {path}: {defect}. It is what a run killed while writing it leaves; '
                  'the next newest complete checkpoint is used instead. Delete the file once you no longer '
                  'need it.', logger='current', level=logging.WARNING)
    return None


def capture_rng_state() -> dict:
    """The global RNG states this process draws from: python, numpy, torch CPU and (when in use) CUDA."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()  # the current device only: one per process
    return state


def restore_rng_state(state: dict) -> None:
    """Put back what :func:`capture_rng_state` returned (a checkpoint may bring its tensors back on a GPU)."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'].cpu())


class _RestoreRngAfterSkip:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` after a resume.

    The loop re-reads the ``skip`` batches it already trained on (that keeps the sampler and the data workers
    where they were), which draws from the RNGs; the checkpoint's RNG state must be put back after that and
    before the first new batch is read, the point at which it was saved. Then this object hands itself back.
    """

    def __init__(self, loop: IterBasedTrainLoop, state: dict, skip: int) -> None:
        self._loop = loop
        self._inner = loop.dataloader_iterator
        self._state = state
        self._left = skip

    def __iter__(self):
        return self

    def __next__(self):
        if self._left > 0:
            self._left -= 1
            return next(self._inner)
        restore_rng_state(self._state)
        self._loop.dataloader_iterator = self._inner
        return next(self._inner)


class ExactResumeMixin:
    """What makes a resumed run continue the same run, shared by SpectralRunner and SpectralFlexibleRunner.

    ``resume=True`` (auto) removes files left half-written by a run killed while saving and picks the newest
    complete checkpoint (:func:`find_latest_checkpoint`). Checkpoints carry every rank's RNG states
    (``meta['rng_states']``); resuming puts them back just before the first new batch is read; validation
    leaves the training streams as it found them.
    """

    _rng_before_val: Optional[dict] = None
    _resume_rng_states: Optional[List[dict]] = None
    _loading_to_resume = False

    def load_or_resume(self) -> None:
        if self._resume and self._load_from is None and not self._has_loaded:
            self._remove_torn_temporaries()
            latest = find_latest_checkpoint(self.work_dir)
            if latest is None:
                self.logger.info(f'resume=auto: no checkpoint in {self.work_dir} yet, starting from scratch.')
            self._load_from = latest
            if latest is None:
                self._resume = False
        super().load_or_resume()

    def _remove_torn_temporaries(self) -> None:
        if not is_main_process():
            return
        for tmp in glob.glob(osp.join(self.work_dir, '*' + TMP_SUFFIX)):
            name = osp.basename(tmp)[:-len(TMP_SUFFIX)]
            if _CKPT_RE.match(name) or name == 'last_checkpoint':
                if osp.isdir(tmp):  # the shard folder of an FSDP 'local' state dict
                    shutil.rmtree(tmp)
                else:
                    os.remove(tmp)
                self.logger.warning(f'Removed {tmp}: a part-written file left by a run killed while saving.')

    def trusted_files(self):
        """The files the config names in ``trust_checkpoints``: they load with full unpickling (which runs
        any code they carry); every other file loads with ``weights_only=True``."""
        return (getattr(self, 'cfg', None) or {}).get('trust_checkpoints')

    def resume(self, filename: str, *args, **kwargs) -> None:
        """The base runner's ``resume``, then the RNG restore is scheduled."""
        self._loading_to_resume = True
        try:
            with trust_files(self.trusted_files()):
                super().resume(filename, *args, **kwargs)
        finally:
            self._loading_to_resume = False
        self._schedule_rng_restore(filename)

    def load_checkpoint(self, filename: str, *args, **kwargs):
        with trust_files(self.trusted_files()):
            return super().load_checkpoint(filename, *args, **kwargs)

    def _make_plain(self, checkpoint: dict) -> None:
        """Write the checkpoint about to be saved as plain containers and tensors (it then loads with
        ``weights_only=True``); warn once about anything a hook added that cannot be written so."""
        left = []
        for key in list(checkpoint):
            checkpoint[key], rest = to_plain(checkpoint[key], key)
            left += rest
        if left and not getattr(self, '_warned_unsafe', False):
            self._warned_unsafe = True
            self.logger.warning(
                'The checkpoint holds objects that only full unpickling can load (' + '; '.join(left[:5])
                + '): it loads only when named in trust_checkpoints / --trust-checkpoint. Store plain values '
                '(tensors, numbers, strings, lists, dicts) in checkpoints instead.')

    def _rng_states_for_checkpoint(self) -> List[dict]:
        """Every rank's RNG states, gathered on all ranks (each rank must call it)."""
        # Inside a validation run (best-checkpoint saving) the training streams are the ones put aside.
        state = self._rng_before_val if self._rng_before_val is not None else capture_rng_state()
        return all_gather_object(state) if self.world_size > 1 else [state]

    def _checkpoint_kwargs(self, out_dir: str, file_client_args: Optional[dict], meta: Optional[dict],
                           backend_args: Optional[dict], **kwargs) -> Tuple[dict, bool]:
        """Keyword arguments for MMEngine's ``save_checkpoint`` with every rank's RNG states added to
        ``meta``, and whether ``out_dir`` is a local folder (written atomically). Every rank must call it."""
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f'meta should be a dict or None, but got {type(meta)}')
        meta = dict(meta or {}, rng_states=self._rng_states_for_checkpoint())
        local = file_client_args is None and isinstance(get_file_backend(out_dir, backend_args=backend_args),
                                                        LocalBackend)
        return dict(kwargs, meta=meta, backend_args=backend_args), local

    def _schedule_rng_restore(self, filename: str) -> None:
        states, self._resume_rng_states = self._resume_rng_states, None
        if states is None:
            self.logger.warning(f'{filename} holds no RNG states (no mmspectral runner wrote it): the '
                                'run resumes, but its random draws (dropout, augmentation) differ from an '
                                'uninterrupted run.')
            return
        if len(states) != self.world_size:
            self.logger.warning(f'{filename} was written by {len(states)} processes and is resumed by '
                                f'{self.world_size}: the RNG states are not restored, so the run continues '
                                'but not exactly as it would have.')
            return
        state = states[self.rank]
        loop = self.train_loop
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:
            loop.dataloader_iterator = _RestoreRngAfterSkip(loop, state, loop.iter)
        else:  # epoch-based loops start a fresh epoch: nothing is re-read
            restore_rng_state(state)

    def call_hook(self, fn_name: str, **kwargs) -> None:
        # Validation draws from the global RNGs (data-loader seeds, sampling); isolating it keeps the training
        # streams independent of when validation runs, which exact resume needs.
        if fn_name == 'before_val':
            self._rng_before_val = capture_rng_state()
        if fn_name == 'after_load_checkpoint' and self._loading_to_resume:
            self._resume_rng_states = kwargs['checkpoint'].get('meta', {}).get('rng_states')
        super().call_hook(fn_name, **kwargs)
        if fn_name == 'before_save_checkpoint':  # the last step before the file is written
            self._make_plain(kwargs['checkpoint'])
        if fn_name == 'after_val' and self._rng_before_val is not None:
            restore_rng_state(self._rng_before_val)
            self._rng_before_val = None
