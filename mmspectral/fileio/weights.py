"""Reading weights and checkpoint files on current torch: Runner checkpoints are trusted pickles, outside weights
are not.

torch >= 2.6 defaults ``torch.load(weights_only=True)``, which rejects MMEngine's Runner checkpoints (they pickle
the message hub's ``HistoryBuffer``, numpy scalars and more). :func:`load_torch_file` is mmspectral's one way to
read such a file:

* inside :func:`trusted_checkpoints` (what ``SpectralRunner.resume`` and ``SpectralRunner.load_checkpoint`` use)
  files are loaded with ``weights_only=False``: they are the Runner's own checkpoints;
* everywhere else, e.g. pretrained weights a config points at, ``weights_only=True``; a file that needs more
  fails with a message saying why and what to do.

Torn or corrupt files fail with their path; :func:`checkpoint_defect` tells cheaply whether a checkpoint on disk
is complete (docs/reliability.md). ``mmspectral.engine.checkpoint`` routes MMEngine's ``CheckpointLoader``
through :func:`load_torch_file` and refuses URL schemes: nothing is downloaded at run time.
"""
import contextvars
import os.path as osp
import pickle
import zipfile
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch

__all__ = ['trusted_checkpoints', 'load_torch_file', 'CheckpointLoadError', 'checkpoint_defect']

_TRUSTED = contextvars.ContextVar('mmspectral_trusted_checkpoints', default=False)


class CheckpointLoadError(RuntimeError):
    """A checkpoint or weights file that could not be loaded; the message says why and what to do."""


@contextmanager
def trusted_checkpoints() -> Iterator[None]:
    """Within this context, local checkpoints load with ``weights_only=False`` (for the Runner's own files)."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def load_torch_file(path: str, map_location: Any = 'cpu', trusted: Optional[bool] = None,
                    mmap: bool = False) -> Any:
    """``torch.load`` with clear errors for missing, torn, corrupt and untrusted files.

    Args:
        path: a local file.
        map_location: as ``torch.load``.
        trusted: load full pickles (``weights_only=False``). None: trusted only inside
            :func:`trusted_checkpoints`.
        mmap: memory-map the tensors (nothing but the pickle record is read until a tensor is used), for a
            check that only needs names and shapes; a file that cannot be mapped is read in full.
    """
    path = osp.expanduser(str(path))
    trusted = _TRUSTED.get() if trusted is None else trusted
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint or weights file {path!r} does not exist. Check the path in the config '
                                'or on the command line (mmspectral never downloads weights).')
    if mmap:
        try:
            return torch.load(path, map_location=map_location, weights_only=not trusted, mmap=True)
        except Exception:  # e.g. not a zip archive: the full read below says clearly what is wrong
            pass
    try:
        return torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        if trusted:
            raise CheckpointLoadError(f'{path} is not a readable torch checkpoint ({exc}).') from exc
        raise CheckpointLoadError(
            f'{path} holds more than tensors, so it was not loaded with torch.load(weights_only=True): '
            f'{str(exc).splitlines()[0]} Such a file is a pickle and can run code when loaded. If it is a '
            'checkpoint written by an MMEngine Runner, pass it as load_from / --resume (the Runner trusts its own '
            'checkpoints); if it is pretrained weights from a source you trust, re-save its state dict with '
            'torch.save(state_dict, path).') from exc
    except (RuntimeError, EOFError, OSError) as exc:
        size = osp.getsize(path)
        raise CheckpointLoadError(
            f'{path} ({size} bytes) is incomplete or corrupt: {str(exc).splitlines()[0]} A run killed while '
            'saving leaves such a file; use the previous checkpoint in the work dir (--resume auto picks the '
            'newest complete one) or delete this file.') from exc


_ZIP_MAGIC = b'PK\x03\x04'


def checkpoint_defect(path: str) -> Optional[str]:
    """Why ``path`` is not a complete torch checkpoint, or None if it looks complete.

    Cheap: it reads the zip central directory at the end of the file (missing when a write was cut short) and
    CRC-checks the small pickle record, without reading the tensors. ``torch.save`` writes zip archives, which
    begin with the zip header, so a torn file begins with it too; a file in torch's legacy (non-zip) format
    cannot be checked this way and is taken as complete.
    """
    try:
        with open(path, 'rb') as f:
            head = f.read(len(_ZIP_MAGIC))
        if not head:
            return 'the file is empty'
        if not _ZIP_MAGIC.startswith(head):
            return None
        size = osp.getsize(path)
        if not zipfile.is_zipfile(path):
            return f'no zip directory at the end of its {size} bytes: it was written only in part'
        with zipfile.ZipFile(path) as archive:
            records = [name for name in archive.namelist() if name.endswith('data.pkl')]
            if not records:
                return 'the archive holds no data.pkl record: it is not a torch checkpoint'
            archive.read(records[0])  # checks the CRC of the record
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return f'unreadable ({exc})'
    return None
