"""Reading weights and checkpoint files: no file runs code when it is loaded, unless the user names it.

Every file is read with ``torch.load(weights_only=True)``: tensors, Python containers and numbers only, so a
pickled object that would run code (a ``__reduce__`` that calls a function) is refused. That covers the
Runner's own checkpoints too: mmspectral's runners write them as plain containers (:mod:`.plain` encodes the
message hub's ``HistoryBuffer`` objects and the numpy values), and :func:`load_torch_file` decodes them.

A file that needs full unpickling (a checkpoint written by another codebase, or by mmspectral before 0.2)
loads only when the user names it: inside :func:`trust_files` (what ``--trust-checkpoint PATH`` and the config
key ``trust_checkpoints=['PATH']`` turn on) that file is read with ``weights_only=False``. The refusal says
which object the file holds and both ways out (trust it, or re-save it as a safe file with
``tools/model_converters/make_checkpoint_safe.py``).

Torn or corrupt files fail with their path; a file that is not a torch file at all (random bytes, text) says
so; :func:`checkpoint_defect` tells cheaply whether a checkpoint on disk is complete (docs/reliability.md).
``mmspectral.engine.checkpoint`` routes MMEngine's ``CheckpointLoader`` through :func:`load_torch_file` and
refuses URL schemes: nothing is downloaded at run time.
"""
import contextvars
import os.path as osp
import pickle
import re
import zipfile
from contextlib import contextmanager
from typing import Any, FrozenSet, Iterable, Iterator, Optional, Union

import torch

from .plain import from_plain

__all__ = ['trust_files', 'is_trusted', 'load_torch_file', 'CheckpointLoadError', 'checkpoint_defect']

_TRUSTED: contextvars.ContextVar[FrozenSet[str]] = contextvars.ContextVar('mmspectral_trusted_files',
                                                                          default=frozenset())


class CheckpointLoadError(RuntimeError):
    """A checkpoint or weights file that could not be loaded; the message says why and what to do."""


def _key(path: str) -> str:
    return osp.realpath(osp.expanduser(str(path)))


@contextmanager
def trust_files(paths: Union[str, Iterable[str], None]) -> Iterator[None]:
    """Within this context, the named local files load with full unpickling (``weights_only=False``).

    Full unpickling runs whatever code the file carries: use it only for files you or your team wrote. Other
    files keep loading with ``weights_only=True``. ``paths``: one path, several, or None (nothing trusted).
    Contexts nest; paths are compared after ``realpath``.
    """
    paths = [paths] if isinstance(paths, str) else list(paths or ())
    token = _TRUSTED.set(_TRUSTED.get() | {_key(p) for p in paths})
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def is_trusted(path: str) -> bool:
    """Whether ``path`` was named in an enclosing :func:`trust_files`."""
    return _key(path) in _TRUSTED.get()


def _not_a_torch_file(path: str) -> Optional[str]:
    """Why ``path`` cannot be a file written by ``torch.save``, judged by its first bytes; None if it may be.
    """
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        return 'it is empty'
    # a zip archive, or the legacy pickle format
    if head.startswith(_ZIP_MAGIC[:len(head)]) or head[:1] == b'\x80':
        return None
    return (f'it begins with the bytes {head!r}, while a file written by torch.save is a zip archive (it '
            "begins with b'PK\\x03\\x04')")


def _refused_global(message: str) -> str:
    found = (re.search(r'Unsupported global: GLOBAL ([\w.]+)', message)
             or re.search(r'GLOBAL ([\w.]+)', message))
    return f'a pickled {found.group(1)}' if found else 'pickled objects'


def load_torch_file(path: str, map_location: Any = 'cpu', trusted: Optional[bool] = None,
                    mmap: bool = False) -> Any:
    """``torch.load`` with clear errors for missing, torn, corrupt, foreign and unsafe files.

    Args:
        path: a local file.
        map_location: as ``torch.load``.
        trusted: True: load with full unpickling (only for a file the user named as trusted; tools pass what
            ``--trust-checkpoint`` says). None: trusted only if named in an enclosing :func:`trust_files`.
        mmap: memory-map the tensors (nothing but the pickle record is read until a tensor is used), for a
            check that only needs names and shapes; a file that cannot be mapped is read in full.

    Returns:
        the file's content, with what :func:`mmspectral.fileio.plain.to_plain` encoded decoded again.
    """
    path = osp.expanduser(str(path))
    trusted = is_trusted(path) if trusted is None else trusted
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint or weights file {path!r} does not exist. Check the path in the '
                                'config or on the command line (mmspectral never downloads weights).')
    foreign = _not_a_torch_file(path)
    if foreign:
        raise CheckpointLoadError(f'{path} is not a torch checkpoint: {foreign}. Point the config or the '
                                  'command line at a .pth file written by torch.save (a training run writes '
                                  'them in its work dir).')
    if mmap:
        try:
            return from_plain(torch.load(path, map_location=map_location, weights_only=not trusted,
                                         mmap=True))
        except Exception:  # e.g. the legacy format: the full read below says clearly what is wrong
            pass
    try:
        return from_plain(torch.load(path, map_location=map_location, weights_only=not trusted))
    except pickle.UnpicklingError as exc:
        if trusted:
            raise CheckpointLoadError(f'{path} is not a readable torch checkpoint ({exc}).') from exc
        raise CheckpointLoadError(
            f'{path} holds {_refused_global(str(exc))}, so it was not loaded: mmspectral loads files with '
            'torch.load(weights_only=True), and unpickling such an object can run code. mmspectral\'s own '
            'runs write checkpoints that need no more since 0.2 (an older mmspectral, or another codebase, '
            'wrote this one). If you or your team made the file, either load it once with full unpickling, '
            f'by naming it: --trust-checkpoint {path} (tools) or trust_checkpoints=[{path!r}] (config); or '
            f're-save it as a safe file: python tools/model_converters/make_checkpoint_safe.py {path} '
            'SAFE.pth. Never do either for a file from a source you do not trust.') from exc
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
