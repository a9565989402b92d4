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
in memory at once. A file is data from anywhere: every header is read before any array, and a header that
declares more bytes than its member holds, more than ``MAX_IMAGES`` images or a side above ``MAX_IMAGE_SIDE``,
or arrays to be loaded whole that exceed half the available memory, is refused naming the file and the array.
"""
import json
import os
import os.path as osp
import zipfile
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from mmspectral.fileio import atomic_write
from .statistics import FeatureSet

__all__ = ['NpzFormatError', 'npz_arrays', 'iter_npz_images', 'check_loadable', 'available_memory',
           'MAX_IMAGES', 'MAX_IMAGE_SIDE', 'save_feature_set', 'load_feature_set',
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


#: Bounds on what an images npz may declare, checked from its headers before anything is read: ADM's protocol
#: uses 50,000 samples and 10,000 reference images of 256 px.
MAX_IMAGES = 500_000
MAX_IMAGE_SIDE = 4096


def _read_header(f) -> Optional[Tuple[tuple, bool, np.dtype]]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    return None


def available_memory() -> int:
    """Bytes of memory available to a new allocation: MemAvailable of /proc/meminfo, else physical memory."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, AttributeError):
        return 1 << 62  # unknown: the other bounds still hold


def _gib(size: int) -> str:
    return f'{size / 2**30:.1f} GiB'


def _declared_bytes(shape: tuple, dtype: np.dtype) -> int:
    return int(np.prod(shape, dtype=object)) * dtype.itemsize  # python ints: no overflow


def npz_arrays(path: str) -> Dict[str, Tuple[tuple, np.dtype]]:
    """Name -> (shape, dtype) of every array in the npz, from the headers only (nothing is loaded).

    Raises NpzFormatError, naming the file and the array, for a header numpy cannot stream (an unusual
    version, a pickled object dtype) and for a header that declares more bytes than its zip member holds (a
    truncated or forged file), before anything is read or allocated.
    """
    out = {}
    with _open_zip(path) as zf:
        for info in zf.infolist():
            name = info.filename
            if not name.endswith('.npy'):
                continue
            try:
                with zf.open(info) as f:
                    header = _read_header(f)
                    offset = f.tell()
            except (ValueError, EOFError, zipfile.BadZipFile, OSError) as exc:
                raise NpzFormatError(f'{path}: the header of {name[:-4]!r} cannot be read ({exc}): the file '
                                     'is corrupt or truncated. Write (or copy) the file again.') from exc
            if header is None:
                raise NpzFormatError(f'{path}: {name[:-4]!r} has a .npy header version this reader does not '
                                     'stream (only 1.0 and 2.0). Write the file again with np.savez.')
            shape, _, dtype = header
            if dtype.hasobject:
                raise NpzFormatError(f'{path}: {name[:-4]!r} holds Python objects (dtype {dtype}), which '
                                     'would need unpickling; expected numeric arrays.')
            claimed = _declared_bytes(shape, dtype)
            if claimed > info.file_size - offset:
                raise NpzFormatError(
                    f'{path}: the header of {name[:-4]!r} declares {dtype} {tuple(shape)} ({claimed:,} '
                    f'bytes), but its zip member holds {max(info.file_size - offset, 0):,}: the file is '
                    'truncated or its header is wrong. Write (or copy) the file again.')
            out[name[:-4]] = (tuple(shape), dtype)
    return out


def check_loadable(path: str, arrays: Dict[str, Tuple[tuple, np.dtype]], keys) -> None:
    """Raise NpzFormatError if loading ``keys`` whole would take more than half the available memory."""
    total = sum(_declared_bytes(*arrays[k]) for k in keys if k in arrays)
    free = available_memory()
    if total > free // 2:
        raise NpzFormatError(f'{path}: {", ".join(k for k in keys if k in arrays)} declare {_gib(total)} '
                             f'together, more than half the memory available ({_gib(free)}); nothing was '
                             'loaded. Such statistics are far larger than any extractor gives: check the '
                             'file.')


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
    if shape[0] > MAX_IMAGES or max(shape[1:3]) > MAX_IMAGE_SIDE:
        raise NpzFormatError(f'{path}: {key!r} declares {shape[0]:,} images of {shape[1]} x {shape[2]} px; '
                             f'this reader takes at most {MAX_IMAGES:,} images of at most {MAX_IMAGE_SIDE} '
                             'px a side (the protocol uses 50,000 of 256 px). Nothing was read: check the '
                             'file, or split a larger set into several files.')
    return shape[0]


def _read_exact(f, size: int, where: str) -> bytearray:
    data = bytearray()
    while len(data) < size:
        chunk = f.read(size - len(data))
        if not chunk:
            raise NpzFormatError(f'{where}: the npz member ended after {len(data)} of {size} bytes: the file '
                                 'is truncated (its zip directory says more than the data holds).')
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

    per_image = int(np.prod(shape[1:])) * dtype.itemsize
    free = available_memory()
    if min(batch_size, num) * per_image > free // 4:
        raise NpzFormatError(f'{path}: a batch of {min(batch_size, num)} of its {shape[1]} x {shape[2]} px '
                             f'images takes {_gib(min(batch_size, num) * per_image)}, more than a quarter of '
                             f'the memory available ({_gib(free)}); pass a smaller --batch-size.')

    def batches() -> Iterator[np.ndarray]:
        with _member(path, key) as f:
            header = _read_header(f)
            if header[1]:  # Fortran order: an image is not contiguous, so the array is loaded whole
                check_loadable(path, arrays, [key])
                arr = np.load(path, allow_pickle=False)[key]
                for start in range(0, num, batch_size):
                    yield np.ascontiguousarray(arr[start:start + batch_size])
                return
            for start in range(0, num, batch_size):
                count = min(batch_size, num - start)
                where = f'{path} ({key!r}, images {start} to {start + count})'
                try:
                    data = _read_exact(f, count * per_image, where)
                except (EOFError, zipfile.BadZipFile, OSError) as exc:
                    raise NpzFormatError(f'{where}: the data cannot be read ({exc}): the file is corrupt or '
                                         'truncated. Write (or copy) the file again.') from exc
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
    check_loadable(path, arrays, keys)
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
    check_loadable(path, arrays, list(arrays))
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
