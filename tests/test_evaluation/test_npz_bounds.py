"""Hostile npz files: every header is checked before anything is read or allocated (docs/reliability.md)."""
import io
import os
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from cli import run_cli

from mmspectral.evaluation.generative import npz_io
from mmspectral.evaluation.generative.npz_io import (NpzFormatError, iter_npz_images, load_feature_set,
                                                     npz_arrays, save_feature_set)
from mmspectral.evaluation.generative.statistics import FeatureSet

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def eval_fid(argv):
    """tools/eval_fid.py's command line, in this process."""
    return run_cli('tools/eval_fid.py', argv)


def forged_npz(path, members, compress=zipfile.ZIP_STORED):
    """An npz whose members are a .npy header claiming ``shape``/``dtype`` followed by ``body`` bytes."""
    with zipfile.ZipFile(path, 'w', compression=compress) as zf:
        for name, (shape, dtype, body) in members.items():
            buf = io.BytesIO()
            descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
            np.lib.format.write_array_header_1_0(buf, dict(descr=descr, fortran_order=False, shape=shape))
            zf.writestr(f'{name}.npy', buf.getvalue() + body)
    return str(path)


def test_a_header_claiming_a_million_images_is_refused_without_allocating(tmp_path):
    path = forged_npz(tmp_path / 'bomb.npz', dict(arr_0=((10**6, 256, 256, 3), np.uint8, b'\0' * 4096)))
    assert os.path.getsize(path) < 10_000
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(NpzFormatError) as err:
            npz_arrays(path)
        with pytest.raises(NpzFormatError):
            iter_npz_images(path, batch_size=50)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5 and peak < 4 * 2**20  # nothing near the 196 GB it claims
    message = str(err.value)
    assert path in message and "'arr_0'" in message and 'truncated' in message
    assert f'{10**6 * 256 * 256 * 3:,}' in message  # what it claims, and what it holds
    # The same file compressed (a zip bomb's shape): refused the same way, from the zip directory.
    path = forged_npz(tmp_path / 'bomb_z.npz', dict(arr_0=((10**6, 256, 256, 3), np.uint8, b'\0' * 4096)),
                      compress=zipfile.ZIP_DEFLATED)
    with pytest.raises(NpzFormatError, match='truncated'):
        npz_arrays(path)


def test_statistics_claiming_a_huge_sigma_are_refused(tmp_path):
    path = forged_npz(tmp_path / 'ref.npz', dict(mu=((200_000, ), np.float64, b'\0' * 64),
                                                 sigma=((200_000, 200_000), np.float64, b'\0' * 64)))
    with pytest.raises(NpzFormatError, match=r"'(mu|sigma)'.*truncated"):
        npz_arrays(path)


def test_bounds_on_image_count_side_and_memory(tmp_path, monkeypatch):
    images = np.zeros((5, 8, 8, 3), np.uint8)
    np.savez(str(tmp_path / 'five.npz'), arr_0=images)
    monkeypatch.setattr(npz_io, 'MAX_IMAGES', 4)
    with pytest.raises(NpzFormatError, match=r'5 images of 8 x 8 px.*at most 4 images') as err:
        iter_npz_images(str(tmp_path / 'five.npz'), 2)
    assert str(tmp_path / 'five.npz') in str(err.value)
    monkeypatch.setattr(npz_io, 'MAX_IMAGES', 10)
    monkeypatch.setattr(npz_io, 'MAX_IMAGE_SIDE', 7)
    with pytest.raises(NpzFormatError, match='at most 7 px'):
        iter_npz_images(str(tmp_path / 'five.npz'), 2)
    monkeypatch.setattr(npz_io, 'MAX_IMAGE_SIDE', 4096)
    # A batch, or arrays loaded whole, that would not fit the memory available.
    monkeypatch.setattr(npz_io, 'available_memory', lambda: 4 * 8 * 8 * 3)
    with pytest.raises(NpzFormatError, match='smaller --batch-size'):
        iter_npz_images(str(tmp_path / 'five.npz'), 2)
    num, batches = iter_npz_images(str(tmp_path / 'five.npz'), 1)  # a batch that fits
    assert num == 5 and sum(len(b) for b in batches) == 5
    fs = FeatureSet.from_features(dict(pool=np.random.default_rng(0).standard_normal((6, 10))), meta={})
    save_feature_set(str(tmp_path / 'stats.npz'), fs)
    with pytest.raises(NpzFormatError, match='half the memory available') as err:
        load_feature_set(str(tmp_path / 'stats.npz'))
    assert str(tmp_path / 'stats.npz') in str(err.value)


def test_a_corrupt_member_names_the_file(tmp_path):
    # A real file cut short in its zip records (as a copy that stopped early and was patched up would be):
    # the .npy header still claims six images; the member holds five.
    images = np.zeros((6, 8, 8, 3), np.uint8)
    path = str(tmp_path / 'cut.npz')
    np.savez(path, arr_0=images)
    data = bytearray(open(path, 'rb').read())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo('arr_0.npy')
    # Shrink the member in place by claiming fewer bytes in both zip headers: reading stops there.
    short = info.file_size - 2 * 8 * 8 * 3
    for offset in (info.header_offset + 18, data.rfind(b'PK\x01\x02') + 20):
        data[offset:offset + 4] = short.to_bytes(4, 'little')
        data[offset + 4:offset + 8] = short.to_bytes(4, 'little')
    open(path, 'wb').write(bytes(data))
    with pytest.raises(NpzFormatError, match='corrupt or truncated') as err:
        npz_arrays(path)
    assert path in str(err.value) and "'arr_0'" in str(err.value)


def test_eval_fid_refuses_too_few_images_before_any_feature_pass(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    np.savez(str(tmp_path / 's.npz'), arr_0=images)
    np.savez(str(tmp_path / 'r.npz'), arr_0=np.concatenate([images, images]))
    # The weights file is missing: a check that came after building the network would report that instead.
    with pytest.raises(NpzFormatError) as err:
        eval_fid([str(tmp_path / 's.npz'), '--ref', str(tmp_path / 'r.npz'), '--inception-weights',
                  str(tmp_path / 'missing.pth'), '--device', 'cpu'])
    message = str(err.value)
    assert str(tmp_path / 's.npz') in message and '3 images' in message and 'at least 4' in message
    bomb = forged_npz(tmp_path / 'bomb.npz', dict(arr_0=((10**6, 256, 256, 3), np.uint8, b'\0' * 64)))
    with pytest.raises(NpzFormatError, match='truncated'):
        eval_fid([str(tmp_path / 'r.npz'), '--ref', bomb, '--inception-weights',
                  str(tmp_path / 'missing.pth'), '--device', 'cpu'])
