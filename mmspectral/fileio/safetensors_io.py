"""Weights as ``safetensors`` files: tensors and a string-to-string header, never pickled code.

A model folder's weights (``mmspectral.apis.save_pretrained``) are written here. Loading only parses the
header and copies the raw tensor bytes, so a shared weights file cannot run code on the machine that loads it,
whoever made it.
"""
import hashlib
import json
import os.path as osp
import struct
from typing import Dict, Mapping, Optional, Tuple

import torch

from .atomic import atomic_write_path
from .pickle_scan import sniff

__all__ = ['save_safetensors', 'load_safetensors', 'read_safetensors_shapes', 'sha256_of_file',
           'SafetensorsError']


class SafetensorsError(RuntimeError):
    """A weights file that is missing, torn or not a safetensors file."""


def sha256_of_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def save_safetensors(path: str, tensors: Mapping[str, torch.Tensor],
                     metadata: Optional[Mapping[str, str]] = None) -> str:
    """Write ``tensors`` (name -> tensor) to ``path`` atomically; returns the file's sha256.

    Tensors that share memory (tied weights) are stored once each as their own copy, since the format holds no
    aliasing; every tensor is saved contiguous on the CPU. ``metadata`` values must be strings.
    """
    from safetensors.torch import save_file
    bad = [k for k, v in (metadata or {}).items() if not isinstance(v, str)]
    if bad:
        raise TypeError(f'safetensors metadata values must be strings; {bad} are not (json.dumps them).')
    plain = {}
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f'{name!r} is a {type(tensor).__name__}, not a tensor: '
                            'safetensors holds tensors only.')
        plain[name] = tensor.detach().to('cpu').contiguous().clone()
    with atomic_write_path(path) as tmp:
        save_file(plain, tmp, metadata=dict(sorted((metadata or {}).items())))
        _sort_metadata(tmp)
    return sha256_of_file(path)


def _sort_metadata(path: str) -> None:
    """Rewrite the header's ``__metadata__`` with its keys in sorted order, in place: the writer keeps them
    in a hash map, so two saves of the same weights could differ in their bytes. The header keeps its length
    (the same entries, reordered), so the tensor data does not move."""
    with open(path, 'r+b') as f:
        (size,) = struct.unpack('<Q', f.read(8))
        raw = f.read(size)
        header = json.loads(raw)
        meta = header.pop('__metadata__', None)
        if not meta:
            return
        ordered = json.dumps({'__metadata__': dict(sorted(meta.items())), **header},
                             separators=(',', ':')).encode()
        ordered += b' ' * (size - len(ordered))
        if len(ordered) != size:
            raise RuntimeError(f'{path}: the safetensors header changed length when its metadata was sorted '
                               f'({len(ordered)} against {size} bytes); the file was not changed.')
        f.seek(8)
        f.write(ordered)


def load_safetensors(path: str, device: str = 'cpu') -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file; a missing, torn or foreign file raises
    :class:`SafetensorsError` saying which and what to do."""
    from safetensors import SafetensorError, safe_open
    _check_exists(path)
    try:
        with safe_open(path, framework='pt', device=device) as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, err) from err
    return tensors, metadata


def read_safetensors_shapes(path: str) -> Dict[str, Tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, from its header alone (no tensor is read), so
    that a model can be checked against the file before anything is built or allocated."""
    from safetensors import SafetensorError, safe_open
    _check_exists(path)
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            return {name: tuple(int(d) for d in f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, err) from err


def _check_exists(path: str) -> None:
    if not osp.isfile(path):
        raise SafetensorsError(f'No weights file at {path}. A model folder holds model.safetensors next to '
                               'its config.json; write one with save_pretrained or tools/model_converters/'
                               'publish_model.py.')


def _unreadable(path: str, err: Exception) -> SafetensorsError:
    fmt, what = sniff(path)
    if fmt != 'safetensors':  # another format altogether: say which, not "cut short"
        return SafetensorsError(f'{path} is not a safetensors file: {what}. Check the path; a model folder '
                                'is written from a checkpoint by tools/model_converters/publish_model.py.')
    return SafetensorsError(f'{path} is not a readable safetensors file ({err}); it may be cut short. Write '
                            'it again from its checkpoint with tools/model_converters/publish_model.py.')
