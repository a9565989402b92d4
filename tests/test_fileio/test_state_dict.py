"""The one helper that reads state dicts and loads them with every name and shape checked."""
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from mmspectral.fileio import (CheckpointLoadError, diff_state_dict, load_state_dict_checked, read_state_dict,
                               trust_files)


def net():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


@pytest.mark.parametrize('seed', range(4))
def test_diff_finds_exactly_the_changed_names(seed):
    """Random edits of a state dict (drop, add, reshape) are found, each in its list, and nothing else."""
    gen = torch.Generator().manual_seed(seed)
    own = net().state_dict()
    keys = list(own)
    picks = torch.randperm(len(keys), generator=gen).tolist()
    dropped, reshaped = sorted(keys[i] for i in picks[:2]), [keys[i] for i in picks[2:4]]
    state = {k: v.clone() for k, v in own.items() if k not in dropped}
    for k in reshaped:
        state[k] = torch.zeros(tuple(own[k].shape) + (2, ))
    state['extra.weight'] = torch.zeros(1)
    diff = diff_state_dict(own, state)
    assert diff.missing == dropped and diff.unexpected == ['extra.weight']
    assert [k for k, _, _ in diff.mis_shaped] == [k for k in keys if k in reshaped]  # the model's order
    assert all(theirs == tuple(own[k].shape) + (2, ) and ours == tuple(own[k].shape)
               for k, theirs, ours in diff.mis_shaped)
    assert not diff_state_dict(own, dict(own))
    ignored = diff_state_dict(own, state, ignore_missing=dropped, ignore_unexpected=('extra.*', ))
    assert not ignored.missing and not ignored.unexpected


def test_failed_load_changes_nothing_and_says_what_differs(tmp_path):
    model, other = net(), net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = other.state_dict()
    state['0.weight'] = torch.zeros(3, 4)
    del state['2.bias']
    with pytest.raises(CheckpointLoadError) as info:
        load_state_dict_checked(model, state, 'x.pth', 'Net', 'Use the right file.', noun='checkpoint')
    assert str(info.value) == ('x.pth does not fit Net: 1 shape mismatches: 0.weight: checkpoint [3, 4] vs '
                               'model [8, 4]; 1 missing from the checkpoint: 2.bias. Use the right file.')
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # a good one loads every tensor; ignored missing names keep the model's values
    state = other.state_dict()
    del state['1.num_batches_tracked']
    load_state_dict_checked(model, state, 'y.pth', 'Net', '', ignore_missing=('*.num_batches_tracked', ))
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in model.state_dict().items())


def test_mapping_target_is_filled_in_place():
    model = nn.Linear(3, 2, bias=False)
    load_state_dict_checked({'renamed.weight': model.weight}, {'renamed.weight': torch.ones(2, 3)},
                            'f', 'M', '')
    assert torch.equal(model.weight.detach(), torch.ones(2, 3))


def test_read_state_dict_unwraps_prefixes_and_refuses_other_content(tmp_path):
    model = net()
    runner_ckpt = dict(meta=dict(iter=3), state_dict=OrderedDict((f'tokenizer.{k}', v)
                                                                 for k, v in model.state_dict().items()))
    torch.save(runner_ckpt, tmp_path / 'ckpt.pth')
    state = read_state_dict(str(tmp_path / 'ckpt.pth'), prefix='tokenizer.')
    assert list(state) == list(model.state_dict())
    for mmap in (False, True):
        raw = read_state_dict(str(tmp_path / 'ckpt.pth'), unwrap=False, mmap=mmap)
        assert set(raw) == {'meta', 'state_dict'}
    torch.save([torch.zeros(1)], tmp_path / 'list.pth')
    with pytest.raises(CheckpointLoadError, match='holds a list, not a state dict'):
        read_state_dict(str(tmp_path / 'list.pth'))
    # a pickle that is more than tensors is read only when trusted
    torch.save(dict(state_dict=model.state_dict(), extra=object.__new__(_Custom)), tmp_path / 'obj.pth')
    with pytest.raises(CheckpointLoadError, match='weights_only=True'):
        read_state_dict(str(tmp_path / 'obj.pth'))
    with trust_files(str(tmp_path / 'obj.pth')):
        assert list(read_state_dict(str(tmp_path / 'obj.pth'))) == list(model.state_dict())


class _Custom:
    pass
