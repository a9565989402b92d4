"""One run per work dir: a lock held while a run trains, a run id, and no silent overwrite of another run.

* ``run.lock`` (an OS file lock, taken with ``filelock``) is held by the process that trains into the work
  dir; ``run.lock.json`` beside it names that process (pid, host, start time, command). The OS drops the lock
  when the process ends, however it ends (``kill -9`` included), so a lock left by a dead run is taken over.
* ``run.json`` holds the work dir's run id, and every checkpoint written by mmspectral's runners carries the
  same id in ``meta['run_id']``: ``--resume auto`` resumes only this run's checkpoints (a moved work dir whose
  ``last_checkpoint`` names a file in the old place resumes its own files, not another run's).
* A run that does not resume refuses a work dir holding checkpoints (it would overwrite them), and says how to
  resume, to choose another dir, or to start over (``start_over=True`` / ``tools/train.py --start-over``,
  which moves the old checkpoints into a sub-folder rather than deleting them).
"""
import datetime
import glob
import json
import os
import os.path as osp
import socket
import sys
import uuid
from typing import List, Optional

import filelock

from mmspectral.fileio import CheckpointLoadError, load_torch_file, write_json

__all__ = ['WorkDirBusyError', 'WorkDirInUseError', 'WorkDirLock', 'read_run_id', 'write_run_id',
           'checkpoint_run_id', 'work_dir_checkpoints', 'refuse_other_runs_checkpoints', 'set_aside',
           'LOCK_FILE', 'LOCK_INFO_FILE', 'RUN_FILE']

LOCK_FILE = 'run.lock'
LOCK_INFO_FILE = 'run.lock.json'
RUN_FILE = 'run.json'
CHECKPOINT_PATTERNS = ('iter_*.pth', 'epoch_*.pth', 'best_*.pth')


class WorkDirBusyError(RuntimeError):
    """Another live process trains into this work dir."""


class WorkDirInUseError(RuntimeError):
    """The work dir holds another run's checkpoints and this run was not asked to resume or start over."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            obj = json.load(f)
        return obj if isinstance(obj, dict) else None
    except (OSError, ValueError):
        return None


class WorkDirLock:
    """The lock of one work dir: :meth:`acquire` takes it without waiting, or raises WorkDirBusyError."""

    def __init__(self, work_dir: str) -> None:
        self.work_dir = osp.abspath(work_dir)
        self._lock = filelock.FileLock(osp.join(self.work_dir, LOCK_FILE), timeout=0)
        self.stale: Optional[dict] = None  # the record of a dead run whose lock was taken over

    def acquire(self) -> 'WorkDirLock':
        os.makedirs(self.work_dir, exist_ok=True)
        info_path = osp.join(self.work_dir, LOCK_INFO_FILE)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            holder = _read_json(info_path) or {}
            who = (f'pid {holder.get("pid", "?")} on {holder.get("host", "?")}, started '
                   f'{holder.get("started", "at an unknown time")}: {holder.get("command", "?")}')
            raise WorkDirBusyError(
                f'{self.work_dir} is in use by another run ({who}). Two runs writing into one work dir '
                'replace each other\'s checkpoints, so this one was not started. Wait for that run to finish '
                '(or stop it), or pass another --work-dir.') from None
        old = _read_json(info_path)
        if old and old.get('pid') != os.getpid():
            self.stale = old  # the OS released its lock: that process has ended
        write_json(info_path, dict(pid=os.getpid(), host=socket.gethostname(),
                                   started=datetime.datetime.now(datetime.timezone.utc).isoformat(
                                       timespec='seconds'),
                                   command=' '.join(sys.argv)))
        return self

    def stale_message(self) -> Optional[str]:
        """A sentence about the dead run whose lock was taken over, or None."""
        if not self.stale:
            return None
        pid = self.stale.get('pid')
        state = 'has ended' if not isinstance(pid, int) or not _pid_alive(pid) else 'no longer holds it'
        return (f'{self.work_dir} held the lock record of an earlier run (pid {pid}, started '
                f'{self.stale.get("started", "?")}), which {state}: its lock was released, so this run took '
                'it over.')

    def release(self) -> None:
        if self._lock.is_locked:
            try:
                os.remove(osp.join(self.work_dir, LOCK_INFO_FILE))
            except OSError:
                pass
            self._lock.release()


def read_run_id(work_dir: str) -> Optional[str]:
    """The run id recorded in ``work_dir/run.json``, or None."""
    obj = _read_json(osp.join(work_dir, RUN_FILE))
    run_id = (obj or {}).get('run_id')
    return run_id if isinstance(run_id, str) and run_id else None


def write_run_id(work_dir: str, run_id: str) -> None:
    write_json(osp.join(work_dir, RUN_FILE), dict(run_id=run_id))


def new_run_id() -> str:
    return uuid.uuid4().hex


def checkpoint_run_id(path: str) -> Optional[str]:
    """``meta['run_id']`` of a checkpoint (tensors are memory-mapped, not read), or None when it has none or
    cannot be read without trust (the full load reports that later)."""
    if osp.isdir(path):
        return None
    try:
        ckpt = load_torch_file(path, mmap=True)
    except (CheckpointLoadError, OSError, RuntimeError):
        return None
    run_id = ((ckpt.get('meta') if isinstance(ckpt, dict) else None) or {}).get('run_id')
    return run_id if isinstance(run_id, str) else None


def work_dir_checkpoints(work_dir: str) -> List[str]:
    """The checkpoints (``iter_N.pth``, ``epoch_N.pth``, ``best_*.pth``) and the ``last_checkpoint`` record in
    ``work_dir``, sorted; files being written (``*.tmp``) are not counted."""
    found = set()
    for pattern in CHECKPOINT_PATTERNS:
        found.update(glob.glob(osp.join(work_dir, pattern)))
    record = osp.join(work_dir, 'last_checkpoint')
    if found and osp.isfile(record):
        found.add(record)
    return sorted(found)


def refuse_other_runs_checkpoints(work_dir: str, checkpoints: List[str], resuming: bool) -> None:
    """Raise WorkDirInUseError: ``work_dir`` holds ``checkpoints`` that this run would overwrite."""
    names = ', '.join(osp.basename(p) for p in checkpoints[:4]) + (' ...' if len(checkpoints) > 4 else '')
    if resuming:
        why = ('none of them is a complete checkpoint of this work dir\'s run (the warnings above say why '
               'each was skipped: torn, or another run id than run.json\'s), so there is nothing to resume')
        resume = 'resume one of them by its path (tools/train.py ... --resume PATH)'
    else:
        why = 'this run was not asked to resume'
        resume = 'resume that run (tools/train.py ... --resume auto, or resume=True in Python)'
    raise WorkDirInUseError(
        f'{work_dir} holds checkpoints of another run ({names}) and {why}: training here would overwrite '
        f'them. Either {resume}, or pass another --work-dir, or start over here with --start-over '
        '(start_over=True in the config), which moves those checkpoints into a sub-folder of the work dir '
        'instead of deleting them.')


def set_aside(work_dir: str, checkpoints: List[str]) -> str:
    """Move ``checkpoints`` (and ``run.json``) into ``work_dir/replaced_<UTC time>/``; return that folder."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%d_%H%M%S')
    folder = osp.join(work_dir, f'replaced_{stamp}')
    suffix = 1
    while osp.exists(folder):
        folder = osp.join(work_dir, f'replaced_{stamp}_{suffix}')
        suffix += 1
    os.makedirs(folder)
    run_file = osp.join(work_dir, RUN_FILE)
    for path in checkpoints + ([run_file] if osp.isfile(run_file) else []):
        os.replace(path, osp.join(folder, osp.basename(path)))
    return folder
