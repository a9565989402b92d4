"""What a file is and what its pickle would import, read without unpickling; and the messages built on it.

A file that is not a checkpoint (random bytes, a numpy .npz of samples, a .npy, a safetensors file) is named
as such, never given advice about trusting or converting it. A hand-made pickle whose unpickling would write a
marker file is scanned: its ``os.system`` is listed and the marker never appears.
"""
import os
import pickle
import shlex
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmspectral.fileio import (CheckpointLoadError, SafetensorsError, checkpoint_defect, load_safetensors,
                               load_torch_file, save_safetensors, scan_imports, sniff)


class System:
    """Unpickling it calls os.system, which writes the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {shlex.quote(self.marker)}', )


class Lookup:
    """Unpickling it calls getattr(HistoryBuffer, name)."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return getattr, (HistoryBuffer, self.name)


def old_checkpoint(path):
    """As mmspectral wrote them before 0.2: HistoryBuffer and numpy values."""
    torch.save(dict(meta=dict(iter=4, rng=np.random.RandomState(0).get_state()),
                    message_hub=dict(loss=HistoryBuffer([0.5, 0.25], [1, 1]), best=np.float64(2.5)),
                    state_dict=OrderedDict(w=torch.arange(6.0))), path)
    return str(path)


def not_checkpoint(text):
    assert 'is not a torch checkpoint' in text and 'Check the path' in text, text
    assert 'trust' not in text and 'weights_only' not in text and 'make_checkpoint_safe' not in text, text
    assert 'incomplete' not in text, text


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    """Bytes that happen to begin like a pickle (0x80, even 0x80 0x02) were taken for one and got advice to
    trust or convert the file; every random file is named as not a checkpoint, with its size and first
    bytes."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        for prefix in (b'', b'\x80', b'\x80\x02'):
            path = tmp_path / f'random_{seed}_{len(prefix)}.pth'
            data = prefix + rng.bytes(4096)
            path.write_bytes(data)
            with pytest.raises(CheckpointLoadError) as info:
                load_torch_file(str(path))
            text = str(info.value)
            not_checkpoint(text)
            assert f'{len(data)} bytes' in text and repr(data[:8])[:-1] in text, text
            assert 'neither a zip archive' in text and 'not a checkpoint at all' in text, text


def test_samples_npz_and_token_npy_are_not_checkpoints(tmp_path):
    """An .npz was called an incomplete or corrupt checkpoint; it is named as a numpy archive of arrays."""
    samples = tmp_path / 'samples_2x8x8x3.npz'
    np.savez(samples, arr_0=np.zeros((2, 8, 8, 3), np.uint8), labels=np.arange(2))
    with pytest.raises(CheckpointLoadError) as info:
        load_torch_file(str(samples))
    text = str(info.value)
    not_checkpoint(text)
    assert 'numpy .npz archive of arrays (arr_0, labels)' in text and 'tools/sample.py' in text, text
    assert 'numpy .npz' in checkpoint_defect(str(samples))
    tokens = tmp_path / 'train_tokens.npy'
    np.save(tokens, np.zeros((4, 16), np.int64))
    with pytest.raises(CheckpointLoadError) as info:
        load_torch_file(str(tokens))
    not_checkpoint(str(info.value))
    assert 'numpy .npy array' in str(info.value)


def test_safetensors_and_checkpoints_are_told_apart(tmp_path):
    weights = tmp_path / 'model.safetensors'
    save_safetensors(str(weights), dict(w=torch.ones(2)))
    with pytest.raises(CheckpointLoadError) as info:
        load_torch_file(str(weights))
    not_checkpoint(str(info.value))
    assert 'it is a safetensors file' in str(info.value)
    ckpt = tmp_path / 'iter_2.pth'
    torch.save(dict(w=torch.ones(2)), ckpt)
    with pytest.raises(SafetensorsError, match='is not a safetensors file: it is a torch checkpoint'):
        load_safetensors(str(ckpt))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize('protocol', [2, 4])
@pytest.mark.parametrize('legacy', [False, True])
def test_scan_lists_every_import_and_runs_nothing(tmp_path, protocol, legacy):
    """GLOBAL (protocol 2) and STACK_GLOBAL with memoised names (protocol 4), zip and legacy formats."""
    marker = tmp_path / 'PAYLOAD_RAN'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=OrderedDict(w=torch.ones(3)), note=System(marker), again=System(marker),
                    hub=HistoryBuffer([1.0], [1])),
               path, pickle_protocol=protocol, _use_new_zipfile_serialization=not legacy)
    assert sniff(str(path))[0] == ('torch_legacy' if legacy else 'torch_zip')
    kinds = {i.name: i.kind for i in scan_imports(str(path))}
    assert kinds[f'{os.name}.system'] == 'other', kinds
    assert kinds['torch._utils._rebuild_tensor_v2'] == 'torch', kinds
    assert kinds['mmengine.logging.history_buffer.HistoryBuffer'] == 'data', kinds
    assert not any('?' in name for name in kinds), kinds
    for data_types in (False, True):
        with pytest.raises(CheckpointLoadError) as info:
            load_torch_file(str(path), data_types=data_types)
        text = str(info.value)
        assert f'Its pickle would import {os.name}.system' in text and '--trust-this-file' in text, text
    assert not marker.exists(), 'the payload ran'
    # a plain pickle (not written by torch.save) is scanned too, and is not a checkpoint
    plain = tmp_path / 'plain.pkl'
    plain.write_bytes(pickle.dumps(dict(x=System(marker), pad=list(range(50))), protocol=protocol))
    assert sniff(str(plain))[0] == 'pickle'
    assert f'{os.name}.system' in [i.name for i in scan_imports(str(plain))]
    with pytest.raises(CheckpointLoadError, match='torch.save did not write'):
        load_torch_file(str(plain))
    assert not marker.exists(), 'the payload ran'


def test_old_checkpoints_load_with_their_data_types_only(tmp_path):
    """The refusal of a pre-0.2 checkpoint says the converter needs no trust; data_types=True reads it."""
    path = old_checkpoint(tmp_path / 'old.pth')
    assert {i.kind for i in scan_imports(path)} == {'torch', 'data'}
    with pytest.raises(CheckpointLoadError) as info:
        load_torch_file(path)
    text = str(info.value)
    assert 'only plain data' in text and 'without running anything' in text and 'SAFE.pth' in text, text
    back = load_torch_file(path, data_types=True)
    assert back['message_hub']['loss']._log_history.tolist() == [0.5, 0.25]
    assert back['meta']['rng'][1].dtype == np.uint32
    # the getattr HistoryBuffer pickles is allowed as the look-up of a plain method, nothing else
    for name, allowed in (('mean', True), ('__init__', False), ('__class__', False)):
        lookup = tmp_path / f'lookup_{name}.pth'
        torch.save(dict(f=Lookup(name), hub=HistoryBuffer([1.0], [1])), lookup)
        if allowed:
            assert load_torch_file(str(lookup), data_types=True)['f'] is HistoryBuffer.mean
        else:
            with pytest.raises(CheckpointLoadError, match='refused getattr'):
                load_torch_file(str(lookup), data_types=True)
