"""What a weights file is, and what its pickle would import, judged without unpickling anything.

:func:`sniff` names a file's format from its first bytes (and, for a zip archive, its member names): a torch
checkpoint (zip, or torch's legacy pickle format), a numpy ``.npz`` / ``.npy``, a safetensors file, a
plain Python pickle, or bytes of no known kind. The loaders use it to say "this is not a checkpoint"
instead of giving advice about unpickling to a file that is not one.

:func:`scan_imports` reads the pickle records of a torch checkpoint with :func:`pickletools.genops` (opcodes
only: nothing is imported or called) and lists every global the pickle would import (``GLOBAL``, ``INST``,
``STACK_GLOBAL`` and the ``EXT`` codes), each marked as

* ``'torch'``: on the allow list of ``torch.load(weights_only=True)`` (tensors, storages, dtypes,
  OrderedDict, ...);
* ``'data'``: one of a few plain data types that list leaves out (numpy arrays, dtypes and scalars, a few
  ``collections`` and builtin types, MMEngine's ``HistoryBuffer``, which mmspectral checkpoints held before
  0.2). :func:`data_type_globals` allows exactly these while a file is read with ``weights_only=True``, so
  such a file is converted without running code of its own;
* ``'other'``: anything else. Unpickling imports it and may call it: only full unpickling (a file the user
  trusts) rebuilds it.
"""
import _compat_pickle
import copyreg
import importlib
import inspect
import io
import os.path as osp
import pickle
import pickletools
import struct
import types
import warnings
import zipfile
from collections import Counter
from typing import IO, Iterator, List, NamedTuple, Tuple

import numpy as np
from torch import _weights_only_unpickler

__all__ = ['sniff', 'TORCH_FORMATS', 'PickleImport', 'scan_imports', 'describe', 'data_type_globals']

_ZIP_MAGIC = b'PK\x03\x04'
_NPY_MAGIC = b'\x93NUMPY'
#: ``pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)``: how torch's legacy format begins.
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
#: The formats that ``torch.load`` may read ('zip_torn': a zip header without the directory that ends a zip).
TORCH_FORMATS = ('torch_zip', 'torch_legacy', 'zip_torn')


def _pickles(stream: IO[bytes]) -> Iterator[List[Tuple[pickletools.OpcodeInfo, object]]]:
    """The opcodes of the pickles one after another in ``stream``, until one fails to parse (its opcodes up to
    there are yielded too: an unpickler runs them before it meets the fault)."""
    while True:
        ops: List[Tuple[pickletools.OpcodeInfo, object]] = []
        try:
            for op, arg, _ in pickletools.genops(stream):
                ops.append((op, arg))
        except Exception:  # garbage, or the raw bytes that follow the last pickle
            if ops:
                yield ops
            return
        yield ops


def _pickle_prefix(head: bytes) -> List[Tuple[pickletools.OpcodeInfo, object]]:
    """The opcodes that parse at the start of ``head`` (the first bytes of a file), up to the first STOP."""
    return next(_pickles(io.BytesIO(head)), [])


def _is_safetensors(head: bytes, size: int) -> bool:
    """8 bytes of little-endian header length, then a JSON header that fits in the file."""
    if len(head) < 9:
        return False
    (length, ) = struct.unpack('<Q', head[:8])
    return 2 <= length <= size - 8 and head[8:9] == b'{'


def sniff(path: str) -> Tuple[str, str]:
    """``(format, description)`` of the file at ``path``, judged by its first bytes and zip member names.

    format: one of :data:`TORCH_FORMATS`, ``'npz'``, ``'npy'``, ``'safetensors'``, ``'pickle'`` (a Python
    pickle that ``torch.save`` did not write), ``'zip'`` (another zip archive), ``'empty'`` or ``'unknown'``.
    description: a clause for a message (``'it is a numpy .npz archive of arrays (arr_0, labels)'``).
    """
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(64)
    if not head:
        return 'empty', 'it is empty (0 bytes)'
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            return 'zip_torn', f'it is a zip archive without the directory that ends one ({size} bytes)'
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            return 'zip_torn', f'it is an unreadable zip archive ({exc})'
        if any(n.endswith('data.pkl') for n in names):
            return 'torch_zip', 'it is a torch checkpoint (a zip archive with a data.pkl record)'
        shown = ', '.join(n[:-4] if n.endswith('.npy') else n for n in names[:6])
        shown += ', ...' if len(names) > 6 else ''
        if names and all(n.endswith('.npy') for n in names):
            return 'npz', (f'it is a numpy .npz archive of arrays ({shown}), not a checkpoint: generated '
                           'samples (tools/sample.py writes arr_0 and labels), FID statistics or features')
        return 'zip', f'it is a zip archive of {shown} without the data.pkl record that torch.save writes'
    if head.startswith(_NPY_MAGIC):
        return 'npy', ('it is a numpy .npy array (a token folder holds such files: tools/extract_tokens.py '
                       'writes them), not a checkpoint')
    if head[:1] == b'\x80':
        ops = _pickle_prefix(head)
        # PROTO 2..5 and two more opcodes that parse: a pickle (random bytes rarely get that far)
        if len(ops) >= 3 and ops[0][0].name == 'PROTO' and 2 <= int(ops[0][1]) <= 5:
            if any(op.name == 'LONG1' and arg == _LEGACY_MAGIC for op, arg in ops):
                return 'torch_legacy', "it is a torch checkpoint in torch's legacy (non-zip) format"
            return 'pickle', ('it is a Python pickle that torch.save did not write (neither a zip archive '
                              "nor torch's legacy format, which begins with torch's magic number), so "
                              'torch.load cannot read it')
    if _is_safetensors(head, size):
        return 'safetensors', ('it is a safetensors file (tensors only: a model folder keeps its weights as '
                               'model.safetensors, read with mmspectral.apis.from_pretrained)')
    return 'unknown', (f'its {size} bytes begin with {head[:16]!r}: neither a zip archive (what torch.save '
                       "writes), a pickle (torch's legacy format) nor a safetensors file, so it is not a "
                       'checkpoint at all')


class PickleImport(NamedTuple):
    """A global that unpickling a file would import: ``name`` ``'module.attr'``, ``kind`` ``'torch'`` |
    ``'data'`` | ``'other'`` (see the module's docstring), ``count`` its opcodes in the file."""
    name: str
    kind: str
    count: int


class _Unknown:
    """A stack item whose value the scan does not follow."""


_UNKNOWN, _MARK = _Unknown(), _Unknown()
_STRINGS = {'STRING', 'BINSTRING', 'SHORT_BINSTRING', 'UNICODE', 'SHORT_BINUNICODE', 'BINUNICODE',
            'BINUNICODE8'}


def _fixed(module: str, attr: str, protocol: int) -> str:
    """The name Python imports: a pickle of protocol < 3 spells Python 2 names (``__builtin__.exec``)."""
    if protocol < 3:
        if (module, attr) in _compat_pickle.NAME_MAPPING:
            module, attr = _compat_pickle.NAME_MAPPING[(module, attr)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return f'{module}.{attr}'


def _imports_of(ops: List[Tuple[pickletools.OpcodeInfo, object]]) -> Iterator[str]:
    """The globals one pickle imports. ``STACK_GLOBAL`` takes its names from the stack, so the stack (strings
    and the memo) is followed; a name that is not a literal string is shown as ``?``."""
    stack: list = []
    memo: dict = {}
    protocol = 0

    def pop():
        return stack.pop() if stack else _UNKNOWN

    for op, arg in ops:
        name = op.name
        if name == 'PROTO':
            protocol = int(arg)
        if name in ('GLOBAL', 'INST'):
            module, _, attr = str(arg).partition(' ')
            yield _fixed(module, attr, protocol)
        elif name == 'STACK_GLOBAL':
            attr, module = pop(), pop()
            yield '.'.join(x if isinstance(x, str) else '?' for x in (module, attr))
            stack.append(_UNKNOWN)
            continue
        elif name in ('EXT1', 'EXT2', 'EXT4'):
            found = copyreg._inverted_registry.get(arg)  # the extension codes registered in this Python
            yield '.'.join(found) if found else f'?.<copyreg extension {arg}>'
        if name in _STRINGS:
            stack.append(arg if isinstance(arg, str) else _UNKNOWN)
        elif name == 'MEMOIZE':
            memo[len(memo)] = stack[-1] if stack else _UNKNOWN
        elif name in ('PUT', 'BINPUT', 'LONG_BINPUT'):
            memo[arg] = stack[-1] if stack else _UNKNOWN
        elif name in ('GET', 'BINGET', 'LONG_BINGET'):
            stack.append(memo.get(arg, _UNKNOWN))
        elif name == 'DUP':
            stack.append(stack[-1] if stack else _UNKNOWN)
        elif name == 'MARK':
            stack.append(_MARK)
        else:
            before = op.stack_before
            if pickletools.markobject in before:
                while stack and stack.pop() is not _MARK:
                    pass
                before = before[:before.index(pickletools.markobject)]
            for _ in before:
                pop()
            stack.extend([_UNKNOWN] * len(op.stack_after))


def _pickle_records(path: str, fmt: str) -> Iterator[List[Tuple[pickletools.OpcodeInfo, object]]]:
    if fmt == 'torch_zip':
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith('.pkl'):  # data.pkl (a TorchScript archive has constants.pkl too)
                    yield from _pickles_limited(io.BytesIO(archive.read(name)), 1)
    else:
        # torch's legacy format: magic number, protocol version, system info, the object, the storage keys;
        # then raw storage bytes, which are not read
        with open(path, 'rb') as f:
            yield from _pickles_limited(f, 5 if fmt == 'torch_legacy' else 1)


def _pickles_limited(stream: IO[bytes], n: int) -> Iterator[List[Tuple[pickletools.OpcodeInfo, object]]]:
    for i, ops in enumerate(_pickles(stream)):
        if i >= n:
            return
        yield ops


def scan_imports(path: str) -> List[PickleImport]:
    """Every global the pickle records of ``path`` would import, in the order first met, without unpickling.

    Raises ValueError for a file that is not a torch checkpoint or a pickle (:func:`sniff` says what it is).
    """
    fmt, what = sniff(path)
    if fmt not in ('torch_zip', 'torch_legacy', 'pickle'):
        raise ValueError(f'{path}: {what}')
    counts: Counter = Counter()
    for ops in _pickle_records(path, fmt):
        counts.update(_imports_of(ops))
    return [PickleImport(name, _kind(name), n) for name, n in counts.items()]


# Plain data types that torch's weights_only allow list leaves out; rebuilding one runs no code of the file's.
_DATA_TYPES = {
    'numpy.ndarray': 'numpy array',
    'numpy.core.multiarray._reconstruct': 'numpy array',
    'numpy._core.multiarray._reconstruct': 'numpy array',
    'numpy.dtype': 'numpy dtype',
    'numpy.core.multiarray.scalar': 'numpy scalar',
    'numpy._core.multiarray.scalar': 'numpy scalar',
    'collections.defaultdict': 'container',
    'collections.deque': 'container',
    'mmengine.logging.history_buffer.HistoryBuffer': "MMEngine's HistoryBuffer, the message hub's logs",
    # HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, 'mean'): allowed only as the
    # look-up of a plain function on a class above, never as a call (see _class_function)
    'builtins.getattr': 'only to look up a plain function on a data class above',
}
_DATA_TYPES.update({f'builtins.{t}': 'builtin type' for t in (
    'list', 'dict', 'tuple', 'frozenset', 'int', 'float', 'str', 'bytes', 'bool', 'slice', 'range')})


def describe(name: str) -> str:
    """What a ``'data'`` global is (``'numpy array'``), or ''."""
    return _DATA_TYPES.get(name, 'numpy dtype' if _is_numpy_dtype_class(name) else '')


def _is_numpy_dtype_class(name: str) -> bool:
    module, _, attr = name.rpartition('.')
    return module == 'numpy.dtypes' and attr.endswith('DType') and attr.isidentifier()


def _kind(name: str) -> str:
    # torch's own allow list, and what the user allowed with torch.serialization.add_safe_globals
    wo = _weights_only_unpickler
    if name in wo._get_allowed_globals() or name in wo._get_user_allowed_globals():
        return 'torch'
    return 'data' if describe(name) else 'other'


def _resolve(name: str):
    module, _, attr = name.rpartition('.')
    with warnings.catch_warnings():  # numpy 2 warns on its numpy.core alias, which old pickles name
        warnings.simplefilter('ignore')
        return getattr(importlib.import_module(module), attr)


def data_type_globals(imports: List[PickleImport]) -> list:
    """``(object, name)`` pairs for ``torch.serialization.safe_globals``: the ``'data'`` globals among
    ``imports``, resolved here (only names of the fixed list above are imported), and the numpy dtype
    classes a dtype is rebuilt as."""
    names = [i.name for i in imports if i.kind == 'data' and i.name != 'builtins.getattr']
    pairs = [(_resolve(n), n) for n in names]
    if 'numpy.dtype' in names:
        pairs += [(cls, f'numpy.dtypes.{n}') for n, cls in vars(np.dtypes).items()
                  if isinstance(cls, type) and n.endswith('DType')]
    if any(i.name == 'builtins.getattr' for i in imports):
        classes = tuple(obj for obj, _ in pairs if isinstance(obj, type))
        pairs.append((_class_function(classes), 'builtins.getattr'))
    return pairs


def _class_function(classes: tuple):
    """A stand-in for ``getattr`` that returns only a plain function defined on one of ``classes``, found
    without running any descriptor."""

    def getattr_function(obj, name):
        found = (inspect.getattr_static(obj, name, None)
                 if isinstance(obj, type) and obj in classes and isinstance(name, str) else None)
        if not isinstance(found, types.FunctionType) or name.startswith('__'):
            raise pickle.UnpicklingError(
                f'refused getattr({obj!r}, {name!r}) while unpickling: only a plain function of '
                f'{[c.__name__ for c in classes]} may be looked up')
        return found

    return getattr_function
