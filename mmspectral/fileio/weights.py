"""Reading weights and checkpoint files: no file runs code when it is loaded, unless the user names it.

Every file is read with ``torch.load(weights_only=True)``: tensors, Python containers and numbers only, so a
pickled object that would run code (a ``__reduce__`` that calls a function) is refused. That covers the
Runner's own checkpoints too: mmspectral's runners write them as plain containers (:mod:`.plain` encodes the
message hub's ``HistoryBuffer`` objects and the numpy values), and :func:`load_torch_file` decodes them.

A file that needs full unpickling (a checkpoint written by another codebase, or by mmspectral before 0.2)
loads only when the user names it: inside :func:`trust_files` (what ``--trust-checkpoint PATH`` and the config
key ``trust_checkpoints=['PATH']`` turn on) that file is read with ``weights_only=False``. The refusal says
which object the file holds, every global its pickle would import (read from the opcodes, nothing run: see
:mod:`.pickle_scan`), and the ways out: ``tools/model_converters/make_checkpoint_safe.py`` re-saves it as a
safe file without running anything when those are plain data (numpy values, MMEngine's ``HistoryBuffer``:
an mmspectral checkpoint before 0.2), and only with its ``--trust-this-file`` otherwise; or trust the file.

Torn or corrupt files fail with their path; a file that is not a torch checkpoint at all (random bytes, text,
a numpy ``.npz`` of samples, a safetensors file) says what it is instead; :func:`checkpoint_defect` tells
cheaply whether a checkpoint on disk is complete (docs/reliability.md).
``mmspectral.engine.checkpoint`` routes MMEngine's ``CheckpointLoader`` through :func:`load_torch_file` and
refuses URL schemes: nothing is downloaded at run time.
"""
import contextvars
import os.path as osp
import pickle
import re
import zipfile
from contextlib import contextmanager, nullcontext
from typing import Any, FrozenSet, Iterable, Iterator, Optional, Union

import torch

from .pickle_scan import TORCH_FORMATS, data_type_globals, describe, scan_imports, sniff
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


def _refused_global(message: str) -> str:
    found = (re.search(r'Unsupported global: GLOBAL ([\w.]+)', message)
             or re.search(r'GLOBAL ([\w.]+)', message))
    return f'a pickled {found.group(1)}' if found else 'pickled objects'


def _unsafe_advice(path: str, data_types: bool, exc: Exception) -> str:
    """What the file's pickle imports beyond torch's allow list, and the ways out that fit."""
    try:
        imports = scan_imports(path)
    except Exception:  # the refusal stands without the list
        imports = []
    data = list(dict.fromkeys(describe(i.name) for i in imports
                              if i.kind == 'data' and i.name != 'builtins.getattr'))
    other = [i.name for i in imports if i.kind == 'other']
    tool = f'python tools/model_converters/make_checkpoint_safe.py {path}'
    trust = (f'If you or your team made the file, you can also load it with full unpickling by naming it: '
             f'--trust-checkpoint {path} (tools) or trust_checkpoints=[{path!r}] (config). Never trust a '
             'file from a source you do not trust.')
    if data and not other and data_types:  # refused with its data types allowed: the pickle is odd
        return f'It did not load even with its plain data types ({", ".join(data)}) allowed: {exc} ' + trust
    if data and not other:
        return (f'Beyond tensors and containers it holds only plain data ({", ".join(data)}), as an '
                f'mmspectral checkpoint from before 0.2 does: {tool} SAFE.pth re-saves it as a safe file '
                'without running anything (it reads the file with weights_only=True, those types allowed). '
                + trust)
    listed = ''
    if other:
        listed = f'Its pickle would import {", ".join(other)}'
        listed += f' (besides plain data: {", ".join(data)}). ' if data else '. '
    return (f"{listed}mmspectral's own runs write checkpoints that need no more since 0.2 (an older "
            'mmspectral or another codebase wrote this one, or someone made it to run code). To list what it '
            f'would import without running anything: {tool}; that tool re-saves it as a safe file only with '
            '--trust-this-file, which unpickles it fully. ' + trust)


def load_torch_file(path: str, map_location: Any = 'cpu', trusted: Optional[bool] = None,
                    mmap: bool = False, data_types: bool = False) -> Any:
    """``torch.load`` with clear errors for missing, torn, corrupt, foreign and unsafe files.

    Args:
        path: a local file.
        map_location: as ``torch.load``.
        trusted: True: load with full unpickling (only for a file the user named as trusted; tools pass what
            ``--trust-checkpoint`` says). None: trusted only if named in an enclosing :func:`trust_files`.
        mmap: memory-map the tensors (nothing but the pickle record is read until a tensor is used), for a
            check that only needs names and shapes; a file that cannot be mapped is read in full.
        data_types: still with ``weights_only=True``, also allow the plain data types the file's pickle
            imports beyond torch's allow list (numpy values, MMEngine's ``HistoryBuffer``: the ``'data'``
            globals of :func:`mmspectral.fileio.pickle_scan.scan_imports`); nothing of the file's own runs.

    Returns:
        the file's content, with what :func:`mmspectral.fileio.plain.to_plain` encoded decoded again.
    """
    path = osp.expanduser(str(path))
    trusted = is_trusted(path) if trusted is None else trusted
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint or weights file {path!r} does not exist. Check the path in the '
                                'config or on the command line (mmspectral never downloads weights).')
    fmt, what = sniff(path)
    if fmt not in TORCH_FORMATS:
        raise CheckpointLoadError(f'{path} is not a torch checkpoint: {what}. Check the path: point the '
                                  'config or the command line at a .pth file written by torch.save (a '
                                  'training run writes them in its work dir).')
    allowed: Any = nullcontext()
    if data_types and not trusted and fmt != 'zip_torn':
        try:
            allowed = torch.serialization.safe_globals(data_type_globals(scan_imports(path)))
        except (ValueError, OSError, zipfile.BadZipFile):
            pass  # an unreadable record: the load below says what is wrong with the file
    try:
        with allowed:
            return from_plain(_read(path, map_location, not trusted, mmap))
    except pickle.UnpicklingError as exc:
        if trusted:
            raise CheckpointLoadError(f'{path} is not a readable torch checkpoint ({exc}).') from exc
        raise CheckpointLoadError(
            f'{path} holds {_refused_global(str(exc))}, so it was not loaded: mmspectral loads files with '
            'torch.load(weights_only=True), and unpickling such an object can run code. '
            + _unsafe_advice(path, data_types, exc)) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        size = osp.getsize(path)
        raise CheckpointLoadError(
            f'{path} ({size} bytes) is incomplete or corrupt: {str(exc).splitlines()[0]} A run killed while '
            'saving leaves such a file; use the previous checkpoint in the work dir (--resume auto picks the '
            'newest complete one) or delete this file.') from exc


def _read(path: str, map_location: Any, weights_only: bool, mmap: bool) -> Any:
    if mmap:
        try:
            return torch.load(path, map_location=map_location, weights_only=weights_only, mmap=True)
        except Exception:  # e.g. the legacy format: the full read below says clearly what is wrong
            pass
    return torch.load(path, map_location=map_location, weights_only=weights_only)


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
                return f'not a torch checkpoint: {sniff(path)[1]}'
            archive.read(records[0])  # checks the CRC of the record
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return f'unreadable ({exc})'
    return None
