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
from mmengine.dist import all_gather_object, broadcast_object_list, is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from mmspectral.fileio import to_plain, trust_files
from .checkpoint import TMP_SUFFIX, checkpoint_defect
from .workdir import (RUN_FILE, WorkDirLock, checkpoint_run_id, new_run_id, read_run_id,
                      refuse_other_runs_checkpoints, set_aside, work_dir_checkpoints, write_run_id)

__all__ = ['ExactResumeMixin', 'find_latest_checkpoint', 'capture_rng_state', 'restore_rng_state']

_CKPT_RE = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def find_latest_checkpoint(work_dir: str, own_run_only: bool = True) -> Optional[str]:
    """The checkpoint to resume from in ``work_dir``, or None.

    Reads ``last_checkpoint`` and prefers the file of the name it stores inside ``work_dir`` (the stored path
    is absolute: after ``mv exp exp_old`` it names ``exp``'s file, which a new run may have written); the
    stored path itself comes next (``out_dir`` elsewhere). Then the ``iter_N.pth`` / ``epoch_N.pth`` with the
    largest N. Files being written (``*.tmp``) are never chosen; a checkpoint that is incomplete (see
    :func:`~mmspectral.engine.checkpoint.checkpoint_defect`) is skipped with a warning naming it, in favour
    of the next newest; so is, with ``own_run_only``, a checkpoint whose ``meta['run_id']`` is not the id in
    the work dir's ``run.json`` (a checkpoint without a run id, written before run ids existed, is taken).
    """
    run_id = read_run_id(work_dir) if own_run_only else None
    candidates = []
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(record):
        with open(record) as f:
            last = f.read().strip()
        if last:
            candidates += [osp.join(work_dir, osp.basename(last)), last]
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
        if defect is not None:
            print_log(f'resume=auto: skipping {path}: {defect}. It is what a run killed while writing it '
                      'leaves; the next newest complete checkpoint is used instead. Delete the file once you '
                      'no longer need it.', logger='current', level=logging.WARNING)
            continue
        other = checkpoint_run_id(path) if run_id is not None else None
        if other is not None and other != run_id:
            print_log(f'resume=auto: skipping {path}: it belongs to another run (run id {other}; this work '
                      f'dir\'s run is {run_id}, see {osp.join(work_dir, RUN_FILE)}). A work dir moved or '
                      'copied away from where it was written still names the old place in last_checkpoint.',
                      logger='current', level=logging.WARNING)
            continue
        return path
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
    _work_dir_lock: Optional[WorkDirLock] = None
    _run_id: Optional[str] = None  # this run's id: in run.json and in every checkpoint's meta
    _resumed_run_id: Optional[str] = None

    def train(self):
        """The base runner's ``train``, with the work dir claimed for this run while it trains."""
        self._claim_work_dir()
        try:
            return super().train()
        finally:
            if self._work_dir_lock is not None:
                self._work_dir_lock.release()
                self._work_dir_lock = None

    def _claim_work_dir(self) -> None:
        """Take the work dir's lock (rank 0) and refuse a work dir holding checkpoints this run would
        overwrite (docs/reliability.md, "One run per work dir"); every rank raises the same error."""
        error = None
        if is_main_process():
            try:
                self._work_dir_lock = WorkDirLock(self.work_dir).acquire()
                stale = self._work_dir_lock.stale_message()
                if stale:
                    self.logger.warning(stale)
                self._check_work_dir_checkpoints()
            except Exception as exc:  # noqa: BLE001 - raised below, on every rank
                if self._work_dir_lock is not None:
                    self._work_dir_lock.release()
                    self._work_dir_lock = None
                error = exc
        if self.world_size > 1:
            shared = [error]
            broadcast_object_list(shared)
            error = shared[0]
        if error is not None:
            raise error

    def _check_work_dir_checkpoints(self) -> None:
        checkpoints = work_dir_checkpoints(self.work_dir)
        auto = self._resume and self._load_from is None
        if not checkpoints or (self._resume and not auto):  # --resume PATH: the user named the checkpoint
            return
        if auto and find_latest_checkpoint(self.work_dir) is not None:
            return
        if not self.cfg.get('start_over', False):
            refuse_other_runs_checkpoints(self.work_dir, checkpoints, resuming=auto)
        folder = set_aside(self.work_dir, checkpoints)
        self.logger.warning(f'start_over: the checkpoints of the run that was in {self.work_dir} were moved '
                            f'into {folder}; delete that folder once you no longer need them.')

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
        self._record_run_id()

    def _record_run_id(self) -> None:
        """This run's id: the resumed checkpoint's, else the work dir's when resuming, else a new one; the
        same on every rank, and written to ``run.json`` by rank 0."""
        run_id = self._resumed_run_id if self._resume else None
        if run_id is None and self._resume:
            run_id = read_run_id(self.work_dir)  # a checkpoint written before run ids existed
        run_id = run_id or new_run_id()
        if self.world_size > 1:
            shared = [run_id]
            broadcast_object_list(shared)
            run_id = shared[0]
        self._run_id = run_id
        if is_main_process() and read_run_id(self.work_dir) != run_id:
            write_run_id(self.work_dir, run_id)

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
        if self._run_id is not None:
            meta['run_id'] = self._run_id
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
            meta = kwargs['checkpoint'].get('meta') or {}
            self._resume_rng_states = meta.get('rng_states')
            self._resumed_run_id = meta.get('run_id') if isinstance(meta.get('run_id'), str) else None
        super().call_hook(fn_name, **kwargs)
        if fn_name == 'before_save_checkpoint':  # the last step before the file is written
            self._make_plain(kwargs['checkpoint'])
        if fn_name == 'after_val' and self._rng_before_val is not None:
            restore_rng_state(self._rng_before_val)
            self._rng_before_val = None
