"""Checkpoints as plain containers and tensors, so that they load with ``torch.load(weights_only=True)``.

An MMEngine Runner checkpoint holds, besides tensors and Python containers, a few objects that
``weights_only=True`` refuses to rebuild: the message hub's ``HistoryBuffer`` objects, numpy arrays (the numpy
RNG state, the buffers' histories) and numpy scalars. :func:`to_plain` writes each as a small tagged dict of
plain values before the file is saved; :func:`from_plain` rebuilds the originals after it is read, bit for bit
(values, dtypes, shapes). Nothing else is changed, and a container with nothing to convert is passed on as the
same object (a state dict keeps its ``_metadata``).
"""
from collections import OrderedDict
from typing import Any, List, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = ['to_plain', 'from_plain', 'PLAIN_TAG']

#: The key that marks a dict written by :func:`to_plain`.
PLAIN_TAG = '__mmspectral_plain__'
_ATOMS = (str, bytes, int, float, bool, complex, type(None), torch.Tensor, torch.dtype, torch.device,
          torch.Size)


_SEQUENCES = (list, tuple, set, frozenset)


def _rebuilt(obj: Any, items: Any) -> Any:
    """``obj`` itself when no item changed; else a container of its type (a dict subclass other than
    OrderedDict: a dict) holding ``items``, with a state dict's ``_metadata`` kept."""
    if isinstance(obj, dict):
        if all(items[k] is v for k, v in obj.items()):
            return obj
        out = (type(obj) if type(obj) in (dict, OrderedDict) else dict)(items)
        if hasattr(obj, '_metadata'):
            out._metadata = obj._metadata
        return out
    return obj if all(a is b for a, b in zip(items, obj)) else type(obj)(items)


def _array(arr: np.ndarray) -> dict:
    try:  # a tensor for the dtypes torch shares with numpy (fast and exact), a list for the others
        data: Any = torch.from_numpy(np.ascontiguousarray(arr).copy())
    except TypeError:
        data = arr.tolist()
    return {PLAIN_TAG: 'ndarray', 'dtype': arr.dtype.str, 'shape': list(arr.shape), 'data': data}


def to_plain(obj: Any, where: str = '') -> Tuple[Any, List[str]]:
    """``obj`` with every HistoryBuffer, numpy array and numpy scalar written as plain values.

    Returns:
        (the converted object, ``'where: type'`` of each object left as it was because it is neither plain nor
        one of those: a file holding one needs full unpickling to load).
    """
    left: List[str] = []
    return _to_plain(obj, where, left), left


def _to_plain(obj: Any, where: str, left: List[str]) -> Any:
    if isinstance(obj, np.generic):  # before the atoms: np.float64 is a float
        return {PLAIN_TAG: 'numpy_scalar', 'dtype': obj.dtype.str, 'value': obj.item()}
    if isinstance(obj, _ATOMS):
        return obj
    if isinstance(obj, np.ndarray):
        return _array(obj)
    if isinstance(obj, HistoryBuffer):
        return {PLAIN_TAG: 'HistoryBuffer', 'log_history': _array(obj._log_history),
                'count_history': _array(obj._count_history), 'max_length': int(obj.max_length)}
    if isinstance(obj, dict) and type(obj) in (dict, OrderedDict):
        return _rebuilt(obj, {k: _to_plain(v, f'{where}.{k}', left) for k, v in obj.items()})
    if type(obj) in _SEQUENCES:
        return _rebuilt(obj, [_to_plain(v, f'{where}[{i}]', left) for i, v in enumerate(obj)])
    left.append(f'{where or "checkpoint"}: {type(obj).__module__}.{type(obj).__qualname__}')
    return obj


def _from_tagged(obj: dict) -> Any:
    kind = obj[PLAIN_TAG]
    if kind == 'ndarray':
        data = obj['data']
        arr = data.numpy() if isinstance(data, torch.Tensor) else np.array(data, dtype=np.dtype(obj['dtype']))
        return arr.astype(np.dtype(obj['dtype']), copy=False).reshape(obj['shape'])
    if kind == 'numpy_scalar':
        return np.dtype(obj['dtype']).type(obj['value'])
    if kind == 'HistoryBuffer':
        return HistoryBuffer(_from_tagged(obj['log_history']), _from_tagged(obj['count_history']),
                             obj['max_length'])
    raise ValueError(f'Unknown {PLAIN_TAG} entry {kind!r}: the checkpoint was written by a newer mmspectral.')


def from_plain(obj: Any) -> Any:
    """Undo :func:`to_plain` (objects it did not write pass through unchanged)."""
    if isinstance(obj, dict):
        if PLAIN_TAG in obj:
            return _from_tagged(obj)
        return _rebuilt(obj, {k: from_plain(v) for k, v in obj.items()})
    if type(obj) in _SEQUENCES:
        return _rebuilt(obj, [from_plain(v) for v in obj])
    return obj
