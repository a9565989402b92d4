"""No file runs code when it is loaded: a hand-made malicious checkpoint on every path that reads one.

The payload's unpickling writes a marker file (it stands for any code a pickle can carry). On every path the
marker must stay absent and the message must say why the file was refused and what to do; only a file the user
names as trusted is unpickled fully.
"""
import io
import os
import subprocess
import sys
from collections import Counter, OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmspectral.apis import build_runner, init_generator, load_config
from mmspectral.engine import check_checkpoint_fits
from mmspectral.fileio import CheckpointLoadError, from_plain, load_torch_file, read_state_dict, trust_files
from mmspectral.models.tokenizers import load_tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
AUTOENCODER = os.path.join(os.path.dirname(HERE), 'data', 'tiny_autoencoder_config.py')
TOKENIZER_CONFIG = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'
GENERATOR_CONFIG = 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'
TINY_TOKENIZER = dict(type='TiTokTokenizer', width=16, depth=1, num_heads=2, image_size=32, patch_size=16,
                      num_tokens=4, token_size=4, codebook_size=8)


class Payload:
    """Unpickling it runs code: here, writing the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')", )


def refused(exc_info, marker) -> str:
    text = str(exc_info.value)
    assert not os.path.exists(marker), 'the payload ran'
    assert 'holds a pickled exec' in text and 'can run code' in text, text
    assert '--trust-checkpoint' in text and 'make_checkpoint_safe.py' in text, text
    return text


@pytest.fixture
def evil(tmp_path):
    """(runner-style checkpoint, plain state dict, marker): both carry the payload."""
    marker = tmp_path / 'PAYLOAD_RAN'
    from mmspectral.registry import TOKENIZERS
    from mmspectral.utils import build_component
    state = build_component(TINY_TOKENIZER, TOKENIZERS).state_dict()
    runner_style = tmp_path / 'iter_3.pth'
    torch.save(dict(meta=dict(iter=3, epoch=0, note=Payload(marker)), message_hub={},
                    state_dict=OrderedDict((f'tokenizer.{k}', v) for k, v in state.items())), runner_style)
    plain = tmp_path / 'plain.pth'
    torch.save(OrderedDict(state, extra=Payload(marker)), plain)
    return str(runner_style), str(plain), str(marker)


def test_readers_refuse_the_payload_and_only_a_named_file_runs_it(evil):
    runner_style, plain, marker = evil
    for path in (runner_style, plain):
        with pytest.raises(CheckpointLoadError) as info:
            load_torch_file(path)
        refused(info, marker)
        with pytest.raises(CheckpointLoadError) as info:
            read_state_dict(path, mmap=True)
        refused(info, marker)
    # trusting another file, or the file inside another context, changes nothing
    with trust_files([plain]), pytest.raises(CheckpointLoadError) as info:
        load_torch_file(runner_style)
    refused(info, marker)
    with trust_files(runner_style):
        load_torch_file(runner_style)
    assert open(marker).read() == 'ran'  # the opt-in does what it says


def test_tokenizer_checkpoint_and_pre_run_check_refuse_it(evil):
    runner_style, plain, marker = evil
    for path in (runner_style, plain):
        with pytest.raises(CheckpointLoadError) as info:
            load_tokenizer(TINY_TOKENIZER, path)
        refused(info, marker)
    with pytest.raises(CheckpointLoadError) as info:
        check_checkpoint_fits(torch.nn.Linear(2, 2), runner_style)
    refused(info, marker)


def autoencoder_runner(work_dir, **overrides):
    cfg = load_config(AUTOENCODER)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'safe-{os.path.basename(str(work_dir))}'
    cfg.merge_from_dict(overrides)
    return build_runner(cfg)


@pytest.mark.parametrize('how', ['load_from', 'resume_path', 'resume_auto'])
@pytest.mark.parametrize('skip_checks', [False, True])
def test_runner_refuses_it_before_and_when_loading(tmp_path, evil, how, skip_checks):
    """The pre-run check refuses it; without the check (skip_checks) the Runner's own loader refuses it."""
    runner_style, _, marker = evil
    work = tmp_path / f'work_{how}_{skip_checks}'
    work.mkdir()
    if how == 'resume_auto':
        os.replace(runner_style, work / 'iter_3.pth')
        options = dict(resume=True, load_from=None)
    else:
        options = dict(load_from=runner_style, resume=how == 'resume_path')
    with pytest.raises(CheckpointLoadError) as info:  # when the runner is built, or else when it loads
        autoencoder_runner(work, skip_checks=skip_checks, **options).train()
    refused(info, marker)


def test_generator_loading_refuses_it_and_loads_strictly(tmp_path, evil):
    runner_style, plain, marker = evil
    options = {'model.tokenizer.width': 32, 'model.tokenizer.depth': 1, 'model.tokenizer.num_heads': 2,
               'model.generator.depth': 1, 'model.generator.width': 32, 'model.generator.num_heads': 2}
    with pytest.raises(CheckpointLoadError) as info:
        init_generator(GENERATOR_CONFIG, runner_style, cfg_options=options)
    refused(info, marker)
    # a checkpoint of another model (here a tokenizer's) is refused, not sampled from at random
    from mmspectral.models import TokenizerModel
    cfg = load_config(TOKENIZER_CONFIG)
    cfg.model.tokenizer.update(width=32, depth=1, num_heads=2)
    tokenizer_ckpt = tmp_path / 'tokenizer.pth'
    torch.save(
        dict(state_dict=TokenizerModel(**{k: v for k, v in cfg.model.items() if k != 'type'}).state_dict(),
             meta=dict(iter=1)), tokenizer_ckpt)
    options['model.tokenizer_checkpoint'] = str(tokenizer_ckpt)
    with pytest.raises(CheckpointLoadError, match=r'does not fit the generator of .*missing from the '
                                                  r'checkpoint: generator\..*not in the model: tokenizer\.'):
        init_generator(GENERATOR_CONFIG, str(tokenizer_ckpt), cfg_options=options)


def test_foreign_files_are_not_torch_checkpoints(tmp_path):
    for name, data in (('random.pth', np.random.default_rng(0).bytes(4096)), ('text.pth', b'not weights\n'),
                       ('empty.pth', b'')):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointLoadError) as info:
            load_torch_file(str(path))
        text = str(info.value)
        assert 'is not a torch checkpoint' in text and 'weights_only' not in text, text


def test_tools_refuse_it(tmp_path, evil, repo_root, subprocess_env):
    """tools/test.py, tools/extract_tokens.py and tools/sample.py: exit status 1, the reason, no payload."""
    runner_style, plain, marker = evil
    small = ['model.tokenizer.width=32', 'model.tokenizer.depth=1', 'model.tokenizer.num_heads=2']
    commands = [
        ['tools/test.py', AUTOENCODER, runner_style, '--work-dir', str(tmp_path / 'test')],
        ['tools/extract_tokens.py', TOKENIZER_CONFIG, plain, '--out', str(tmp_path / 'tokens'),
         '--num-workers', '0', '--device', 'cpu', '--cfg-options', *small],
        ['tools/sample.py', GENERATOR_CONFIG, runner_style, '--out', str(tmp_path / 'samples'),
         '--device', 'cpu', '--cfg-options', *small],
    ]
    for command in commands:
        out = subprocess.run([sys.executable, *command], cwd=repo_root, env=subprocess_env,
                             capture_output=True, text=True, timeout=300)
        text = out.stdout + out.stderr
        assert out.returncode != 0 and 'can run code' in text and '--trust-checkpoint' in text, text[-3000:]
        assert not os.path.exists(marker), f'{command[0]} ran the payload'


def test_old_checkpoints_are_refused_and_made_safe(tmp_path, repo_root, subprocess_env):
    """A checkpoint as mmspectral wrote them before 0.2 (HistoryBuffer, numpy values) -> one that loads."""
    old = tmp_path / 'old.pth'
    hub = dict(log_scalars=dict(loss=HistoryBuffer([0.5, 0.25], [1, 1])),
               runtime_info=dict(best=np.float64(2.5)))
    rng = ('MT19937', np.arange(624, dtype=np.uint32), 3, 0, 0.0)
    torch.save(dict(meta=dict(iter=4, rng_states=[dict(numpy=rng)]), message_hub=hub,
                    state_dict=OrderedDict(w=torch.arange(6.0))), old)
    with pytest.raises(CheckpointLoadError, match='holds a pickled numpy.*can run code'):
        load_torch_file(str(old))
    safe = tmp_path / 'safe.pth'
    out = subprocess.run(
        [sys.executable, 'tools/model_converters/make_checkpoint_safe.py', str(old), str(safe)],
        cwd=repo_root, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    torch.load(str(safe), weights_only=True)
    back = load_torch_file(str(safe))
    assert back['message_hub']['log_scalars']['loss']._log_history.tolist() == [0.5, 0.25]
    best = back['message_hub']['runtime_info']['best']
    assert type(best) is np.float64 and best == 2.5
    state = back['meta']['rng_states'][0]['numpy']
    assert state[1].dtype == np.uint32 and np.array_equal(state[1], rng[1]) and state[2:] == rng[2:]
    assert torch.equal(back['state_dict']['w'], torch.arange(6.0))
    # what has no plain form is listed, and nothing is written
    torch.save(dict(meta=dict(thing=Counter(a=1))), tmp_path / 'odd.pth')
    out = subprocess.run(
        [sys.executable, 'tools/model_converters/make_checkpoint_safe.py', str(tmp_path / 'odd.pth'),
         str(tmp_path / 'odd_safe.pth')],
        cwd=repo_root, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and 'meta.thing: collections.Counter' in out.stderr, out.stderr
    assert not os.path.exists(tmp_path / 'odd_safe.pth')


def test_plain_round_trip_is_exact():
    """to_plain / from_plain over random numpy values of many dtypes and shapes."""
    from mmspectral.fileio import to_plain
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8, np.uint32, np.bool_,
                  np.uint64):
        arr = (rng.standard_normal((3, 4)) * 1000).astype(dtype)
        obj = dict(a=arr, s=arr.reshape(-1)[0], nested=[(arr[:1], 'x')])
        plain, left = to_plain(obj)
        assert not left
        buf = io.BytesIO()
        torch.save(plain, buf)
        buf.seek(0)
        back = from_plain(torch.load(buf, weights_only=True))
        assert back['a'].dtype == arr.dtype and np.array_equal(back['a'], arr)
        assert type(back['s']) is type(obj['s']) and back['s'] == obj['s']
        assert np.array_equal(back['nested'][0][0], arr[:1]) and back['nested'][0][1] == 'x'
