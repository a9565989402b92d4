"""The npz files of the evaluation protocol: sample batches, ADM reference batches, our statistics files.

* samples (``tools/sample.py``): ``arr_0`` uint8 (N, H, W, 3) RGB, and ``labels``;
* the ADM reference batch (``VIRTUAL_imagenet256_labeled.npz``): ``arr_0`` uint8 (N, 256, 256, 3) and the
  TensorFlow graph's statistics ``mu`` (2048,), ``sigma`` (2048, 2048) of pool features and ``mu_s``
  (2023,), ``sigma_s`` (2023, 2023) of spatial features. Those statistics come from the TF graph: this
  package's PyTorch Inception gives slightly different features, so by default the reference's images are run
  through the same network as the samples, and the stored statistics are used only on request (or when the
  file has no images);
* a statistics file written by :func:`save_feature_set` (``format`` = ``mmspectral-feature-stats-v1``):
  ``meta`` (JSON: extractor and weights), ``source``, ``num_images``, ``stats_from_features``, ``mu``,
  ``sigma``, optional ``mu_s``, ``sigma_s``, and the features the other metrics need: ``pool``
  (precision/recall), ``logits`` (IS), ``spatial`` (only for sets no larger than its dimension, where the
  exact small-set sFID needs it). Reused instead of the images.

Images are streamed from the zip member in batches, so a 50,000-image npz (9.8 GB for 256 px) is never held
in memory at once.
"""
import json
import os.path as osp
import zipfile
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from mmspectral.fileio import atomic_write
from .statistics import FeatureSet

__all__ = ['NpzFormatError', 'npz_arrays', 'iter_npz_images', 'save_feature_set', 'load_feature_set',
           'STATS_FORMAT']

STATS_FORMAT = 'mmspectral-feature-stats-v1'
ADM_STAT_KEYS = ('mu', 'sigma', 'mu_s', 'sigma_s')


class NpzFormatError(ValueError):
    """An npz file without the arrays, shapes or dtypes the evaluation expects; the message says which."""


def _open_zip(path: str) -> zipfile.ZipFile:
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path!r} does not exist (expected an npz file: samples from '
                                'tools/sample.py, a reference batch, or statistics from tools/eval_fid.py '
                                '--save-ref-stats).')
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise NpzFormatError(f'{path} is not an npz file (not a zip archive); expected one written by '
                             'np.savez with arr_0 = uint8 images (N, H, W, 3).') from exc


def _read_header(f) -> Optional[Tuple[tuple, bool, np.dtype]]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    return None


def npz_arrays(path: str) -> Dict[str, Tuple[tuple, np.dtype]]:
    """Name -> (shape, dtype) of every array in the npz, from the headers only (nothing is loaded)."""
    out = {}
    with _open_zip(path) as zf:
        for name in zf.namelist():
            if not name.endswith('.npy'):
                continue
            with zf.open(name) as f:
                header = _read_header(f)
            if header is None:  # an unusual header version: let numpy read it
                arr = np.load(path, allow_pickle=False)[name[:-4]]
                header = (arr.shape, False, arr.dtype)
            out[name[:-4]] = (tuple(header[0]), header[2])
    return out


def _describe(arrays: Dict[str, Tuple[tuple, np.dtype]]) -> str:
    return ', '.join(f'{k} {v[1]} {v[0]}' for k, v in sorted(arrays.items())) or 'no arrays'


def check_images(path: str, arrays: Dict[str, Tuple[tuple, np.dtype]], key: str = 'arr_0') -> int:
    """Raise NpzFormatError unless ``key`` is uint8 (N, H, W, 3) with N > 0; return N."""
    if key not in arrays:
        raise NpzFormatError(f'{path} has no {key!r} array (it holds: {_describe(arrays)}). Expected '
                             f'{key!r} = uint8 images (N, H, W, 3), as tools/sample.py writes, or a '
                             'statistics file.')
    shape, dtype = arrays[key]
    if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3 or shape[0] == 0:
        raise NpzFormatError(f'{path}: {key!r} is {dtype} {shape}; expected uint8 (N, H, W, 3) RGB images in '
                             '[0, 255] with N > 0. Convert float images with (x * 255).round().clip(0, 255)'
                             '.astype(np.uint8) and NCHW ones with x.transpose(0, 2, 3, 1).')
    return shape[0]


def _read_exact(f, size: int) -> bytearray:
    data = bytearray()
    while len(data) < size:
        chunk = f.read(size - len(data))
        if not chunk:
            raise NpzFormatError(f'the npz member ended after {len(data)} of {size} bytes: the file is '
                                 'truncated.')
        data += chunk
    return data  # a bytearray: np.frombuffer over it gives a writable array


@contextmanager
def _member(path: str, key: str) -> Iterator:
    with _open_zip(path) as zf, zf.open(f'{key}.npy') as f:
        yield f


def iter_npz_images(path: str, batch_size: int, key: str = 'arr_0') -> Tuple[int, Iterator[np.ndarray]]:
    """(N, iterator over uint8 (B, H, W, 3) batches) of the images in ``path``, read batch by batch."""
    arrays = npz_arrays(path)
    num = check_images(path, arrays, key)
    shape, dtype = arrays[key]

    def batches() -> Iterator[np.ndarray]:
        with _member(path, key) as f:
            header = _read_header(f)
            if header is None or header[1]:  # unusual version or Fortran order: load it whole
                arr = np.load(path, allow_pickle=False)[key]
                for start in range(0, num, batch_size):
                    yield np.ascontiguousarray(arr[start:start + batch_size])
                return
            per_image = int(np.prod(shape[1:])) * dtype.itemsize
            for start in range(0, num, batch_size):
                count = min(batch_size, num - start)
                data = _read_exact(f, count * per_image)
                yield np.frombuffer(data, dtype=dtype).reshape((count, ) + tuple(shape[1:]))

    return num, batches()


def _check_stat_shapes(path: str, arrays: Dict[str, Tuple[tuple, np.dtype]], mu: str, sigma: str) -> None:
    if mu not in arrays or sigma not in arrays:
        raise NpzFormatError(f'{path} has {mu!r} or {sigma!r} but not both (it holds: {_describe(arrays)}).')
    (mu_shape, _), (sigma_shape, _) = arrays[mu], arrays[sigma]
    if len(mu_shape) != 1 or sigma_shape != (mu_shape[0], mu_shape[0]):
        raise NpzFormatError(f'{path}: {mu!r} is {mu_shape} and {sigma!r} is {sigma_shape}; expected (D,) '
                             'and (D, D).')


def load_stored_statistics(path: str, arrays: Dict[str, Tuple[tuple, np.dtype]]) -> Dict[str, np.ndarray]:
    """``mu``, ``sigma`` and, if present, ``mu_s``, ``sigma_s`` from an ADM-style npz (float64)."""
    _check_stat_shapes(path, arrays, 'mu', 'sigma')
    keys = ['mu', 'sigma']
    if 'mu_s' in arrays or 'sigma_s' in arrays:
        _check_stat_shapes(path, arrays, 'mu_s', 'sigma_s')
        keys += ['mu_s', 'sigma_s']
    with np.load(path, allow_pickle=False) as obj:
        return {k: obj[k].astype(np.float64) for k in keys}


def save_feature_set(path: str, features: FeatureSet) -> None:
    """Write ``features`` as a statistics npz (atomically: a reader never sees half a file)."""
    if features.mu is None or features.sigma is None:
        raise ValueError('save_feature_set needs at least mu and sigma.')
    arrays = dict(format=np.array(STATS_FORMAT), meta=np.array(json.dumps(features.meta, sort_keys=True)),
                  source=np.array(features.source), num_images=np.array(features.num_images, dtype=np.int64),
                  stats_from_features=np.array(features.stats_from_features), mu=features.mu,
                  sigma=features.sigma)
    if features.mu_s is not None:
        arrays.update(mu_s=features.mu_s, sigma_s=features.sigma_s)
    for key in ('pool', 'logits'):
        if getattr(features, key) is not None:
            arrays[key] = getattr(features, key).astype(np.float32)
    spatial = features.spatial
    if spatial is not None and len(spatial) <= spatial.shape[1]:
        arrays['spatial'] = spatial.astype(np.float32)
    with atomic_write(path, 'wb') as f:
        np.savez(f, **arrays)


def load_feature_set(path: str) -> FeatureSet:
    """Read a statistics npz written by :func:`save_feature_set`."""
    arrays = npz_arrays(path)
    if 'format' not in arrays:
        raise NpzFormatError(f'{path} is not an mmspectral statistics file (no "format" entry; it holds: '
                             f'{_describe(arrays)}).')
    with np.load(path, allow_pickle=False) as obj:
        fmt = str(obj['format'])
        if fmt != STATS_FORMAT:
            raise NpzFormatError(f'{path} has statistics format {fmt!r}; this version reads '
                                 f'{STATS_FORMAT!r}. Compute the statistics again with tools/eval_fid.py '
                                 '--save-ref-stats.')
        _check_stat_shapes(path, arrays, 'mu', 'sigma')
        get = lambda key: obj[key] if key in arrays else None  # noqa: E731
        out = FeatureSet(num_images=int(obj['num_images']), meta=json.loads(str(obj['meta'])),
                         source=f'statistics file {path} (from {obj["source"]})', mu=obj['mu'],
                         sigma=obj['sigma'], mu_s=get('mu_s'), sigma_s=get('sigma_s'), pool=get('pool'),
                         logits=get('logits'), spatial=get('spatial'),
                         stats_from_features=bool(obj['stats_from_features']))
    if out.pool is not None and out.pool.shape != (out.num_images, out.mu.shape[0]):
        raise NpzFormatError(f'{path}: pool features are {out.pool.shape}, expected ({out.num_images}, '
                             f'{out.mu.shape[0]}) to match num_images and mu.')
    return out
