"""Checkpoint loading on current torch: Runner checkpoints are trusted pickles, outside weights are not.

torch >= 2.6 defaults ``torch.load(weights_only=True)``, which rejects MMEngine's Runner checkpoints (they pickle
the message hub's ``HistoryBuffer``, numpy scalars and more). mmspectral registers its own loader for local
files with MMEngine's ``CheckpointLoader``:

* inside :func:`trusted_checkpoints` (what ``SpectralRunner.resume`` and ``SpectralRunner.load_checkpoint`` use)
  files are loaded with ``weights_only=False``: they are the Runner's own checkpoints;
* everywhere else, e.g. pretrained weights a config points at, ``weights_only=True``; a file that needs more
  fails with a message saying why and what to do.

It also refuses URL schemes: nothing is downloaded at run time. Torn or corrupt files fail with their path.
"""
import contextvars
import os.path as osp
import pickle
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['trusted_checkpoints', 'load_torch_file', 'CheckpointLoadError']

_TRUSTED = contextvars.ContextVar('mmspectral_trusted_checkpoints', default=False)
_DOWNLOAD_SCHEMES = ('http://', 'https://', 'torchvision://', 'open-mmlab://', 'openmmlab://', 'mmcls://',
                     'pavi://', 'modelzoo://')


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


def load_torch_file(path: str, map_location: Any = 'cpu', trusted: Optional[bool] = None) -> Any:
    """``torch.load`` with clear errors for missing, torn, corrupt and untrusted files.

    Args:
        path: a local file.
        map_location: as ``torch.load``.
        trusted: load full pickles (``weights_only=False``). None: trusted only inside
            :func:`trusted_checkpoints`.
    """
    path = osp.expanduser(str(path))
    trusted = _TRUSTED.get() if trusted is None else trusted
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint or weights file {path!r} does not exist. Check the path in the config '
                                'or on the command line (mmspectral never downloads weights).')
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


def load_from_local(filename: str, map_location=None) -> Any:
    return load_torch_file(filename, map_location=map_location)


def _refuse_download(filename: str, map_location=None, **kwargs) -> Any:
    raise CheckpointLoadError(f'{filename!r} would be downloaded, and mmspectral never downloads at run time. '
                              'Download the file yourself and pass its local path.')


CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
CheckpointLoader.register_scheme(prefixes=_DOWNLOAD_SCHEMES, loader=_refuse_download, force=True)
