import collections
import os
import pickle

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from mmspectral.engine import CheckpointLoadError, find_latest_checkpoint, load_torch_file, trust_files


class Custom:
    """Stands for anything a checkpoint pickles beyond tensors (MMEngine's HistoryBuffer, say)."""

    def __init__(self, value):
        self.value = value


def test_plain_state_dict_loads_weights_only(tmp_path):
    path = tmp_path / 'weights.pth'
    sd = collections.OrderedDict(w=torch.randn(3, 2), b=torch.zeros(3))
    torch.save(sd, path)
    loaded = load_torch_file(str(path))
    assert torch.equal(loaded['w'], sd['w'])
    # The same through MMEngine's loader, which mmspectral replaces for local files.
    assert torch.equal(CheckpointLoader.load_checkpoint(str(path))['b'], sd['b'])


def test_pickles_need_trust(tmp_path):
    path = tmp_path / 'runner_ckpt.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)), meta=dict(hub=Custom(3))), path)
    with pytest.raises(CheckpointLoadError, match='weights_only=True'):
        load_torch_file(str(path))
    with pytest.raises(CheckpointLoadError, match='weights_only=True'):
        CheckpointLoader.load_checkpoint(str(path))
    with trust_files([str(tmp_path / '.' / 'runner_ckpt.pth')]):  # the same file, named another way
        assert CheckpointLoader.load_checkpoint(str(path))['meta']['hub'].value == 3
        # only the named file is trusted
        other = tmp_path / 'other.pth'
        torch.save(dict(hub=Custom(4)), other)
        with pytest.raises(CheckpointLoadError, match='pickled .*Custom'):
            load_torch_file(str(other))
    # Trust does not outlive the context.
    with pytest.raises(CheckpointLoadError):
        load_torch_file(str(path))


def test_torn_missing_and_remote_files_are_explained(tmp_path):
    path = tmp_path / 'iter_10.pth'
    torch.save(dict(w=torch.randn(256, 256)), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])  # a run killed while saving
    with pytest.raises(CheckpointLoadError, match='incomplete or corrupt'):
        load_torch_file(str(path))
    with trust_files(str(path)), pytest.raises(CheckpointLoadError, match='incomplete or corrupt'):
        load_torch_file(str(path))
    with pytest.raises(FileNotFoundError, match='never downloads'):
        load_torch_file(str(tmp_path / 'nope.pth'))
    for url in ('https://example.com/w.pth', 'torchvision://resnet50', 'open-mmlab://x'):
        with pytest.raises(CheckpointLoadError, match='never downloads'):
            CheckpointLoader.load_checkpoint(url)


def test_find_latest_checkpoint(tmp_path):
    assert find_latest_checkpoint(str(tmp_path)) is None
    for n in (2, 10, 4):
        (tmp_path / f'iter_{n}.pth').write_bytes(b'x')
    (tmp_path / 'iter_12.pth.tmp').write_bytes(b'x')
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')
    # last_checkpoint wins; when its absolute path is stale (work dir moved), the same name here is used.
    (tmp_path / 'last_checkpoint').write_text('/old/place/work_dir/iter_4.pth')
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')
    os.remove(tmp_path / 'iter_2.pth')
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')


def test_pickle_module_still_refuses_in_torch_default(tmp_path):
    # Guard against a torch that loads full pickles by default: then the trusted split would be moot.
    path = tmp_path / 'p.pth'
    torch.save(dict(x=Custom(1)), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
