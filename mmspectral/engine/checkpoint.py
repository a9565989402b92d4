"""MMEngine's checkpoint loading routed through mmspectral's reader of weights files.

Local files go through :func:`mmspectral.fileio.load_torch_file` (``weights_only=True``, unless the user
named the file in ``trust_checkpoints`` / ``--trust-checkpoint``); URL schemes are refused, since nothing is
downloaded at run time. Importing this module registers both with MMEngine's ``CheckpointLoader``.
"""
from typing import Any

from mmengine.runner.checkpoint import CheckpointLoader

from mmspectral.fileio import (TMP_SUFFIX, CheckpointLoadError, atomic_write_path, checkpoint_defect,
                               load_torch_file, trust_files)

__all__ = ['trust_files', 'load_torch_file', 'CheckpointLoadError', 'atomic_write_path',
           'checkpoint_defect', 'TMP_SUFFIX']

_DOWNLOAD_SCHEMES = ('http://', 'https://', 'torchvision://', 'open-mmlab://', 'openmmlab://', 'mmcls://',
                     'pavi://', 'modelzoo://')


def load_from_local(filename: str, map_location=None) -> Any:
    return load_torch_file(filename, map_location=map_location)


def _refuse_download(filename: str, map_location=None, **kwargs) -> Any:
    raise CheckpointLoadError(f'{filename!r} would be downloaded, and mmspectral never downloads at run '
                              'time. Download the file yourself and pass its local path.')


CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
CheckpointLoader.register_scheme(prefixes=_DOWNLOAD_SCHEMES, loader=_refuse_download, force=True)
