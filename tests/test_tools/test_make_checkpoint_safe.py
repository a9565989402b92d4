"""tools/model_converters/make_checkpoint_safe.py inspects before it loads: nothing in the file runs unless
the user passes --trust-this-file.

The payload's unpickling (os.system) writes a marker file; the tool must list ``os.system``
(``posix.system``) from the pickle's opcodes and leave the marker absent, write nothing, and convert only a
file whose imports are plain data, or, with the flag, the file the user vouches for.
"""
import os
import shlex
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from cli import run_cli
from mmengine.logging import HistoryBuffer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, 'tools', 'model_converters', 'make_checkpoint_safe.py')


class System:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {shlex.quote(self.marker)}', )


@pytest.fixture
def run(capsys):
    """``(exit status, stdout, stderr)`` of the tool's main, in this process."""

    def call(args):
        rc, message = 0, ''
        try:
            run_cli('tools/model_converters/make_checkpoint_safe.py', args)
        except SystemExit as exc:
            rc, message = (1, exc.code) if isinstance(exc.code, str) else (exc.code or 0, '')
        out = capsys.readouterr()
        return rc, out.out, out.err + message

    return call


@pytest.mark.parametrize('legacy', [False, True])
def test_it_lists_the_payload_and_runs_it_only_when_trusted(tmp_path, run, legacy):
    marker = tmp_path / 'PAYLOAD_RAN'
    evil = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=OrderedDict(w=torch.arange(4.0)), note=System(marker)), evil,
               _use_new_zipfile_serialization=not legacy)
    safe = tmp_path / 'safe.pth'
    system = f'{os.name}.system'
    # inspect only
    rc, out, err = run([evil])
    assert rc == 0 and f'OTHER  {system}' in out, out + err
    assert 'torch  torch._utils._rebuild_tensor_v2' in out, out
    assert 'nothing was imported or run' in out and '--trust-this-file' in out, out
    assert not marker.exists(), 'inspecting ran the payload'
    # convert without the flag: refused, nothing written, nothing run
    rc, out, err = run([evil, safe])
    assert rc == 1 and f'OTHER  {system}' in out, out + err
    assert f'would import {system}' in err and '--trust-this-file' in err, err
    assert not marker.exists(), 'converting without the flag ran the payload'
    assert not safe.exists()
    # the flag is the opt-in: the file is unpickled fully (the payload runs) and the safe file is written
    rc, out, err = run([evil, safe, '--trust-this-file'])
    assert rc == 0 and 'unpickled fully' in out, out + err
    assert marker.exists()
    back = torch.load(safe, weights_only=True)
    assert torch.equal(back['state_dict']['w'], torch.arange(4.0)) and back['note'] == 0  # os.system's status


def test_plain_data_converts_without_the_flag(tmp_path, run):
    """A pre-0.2 mmspectral checkpoint (HistoryBuffer, numpy values) is read with weights_only=True."""
    old = tmp_path / 'old.pth'
    torch.save(dict(meta=dict(iter=4, rng=np.random.RandomState(0).get_state()),
                    message_hub=dict(loss=HistoryBuffer([0.5, 0.25], [1, 1])),
                    state_dict=OrderedDict(w=torch.arange(6.0))), old)
    rc, out, err = run([old])
    assert rc == 0 and 'data   mmengine.logging.history_buffer.HistoryBuffer' in out, out + err
    assert 'OTHER' not in out and 'converts without running anything' in out, out
    safe = tmp_path / 'safe.pth'
    rc, out, err = run([old, safe])
    assert rc == 0 and 'read with weights_only=True; nothing ran' in out, out + err
    torch.load(safe, weights_only=True)


def test_files_that_are_not_checkpoints(tmp_path, run):
    samples = tmp_path / 'samples.npz'
    np.savez(samples, arr_0=np.zeros((2, 8, 8, 3), np.uint8), labels=np.arange(2))
    noise = tmp_path / 'noise.pth'
    noise.write_bytes(b'\x80' + np.random.default_rng(0).bytes(1000))
    for path, what in ((samples, 'numpy .npz archive'), (noise, 'not a checkpoint at all')):
        for flag in ([], ['--trust-this-file']):
            rc, out, err = run([path, tmp_path / 'out.pth', *flag])
            assert rc == 1 and what in err and 'Check the path' in err, out + err
            assert not (tmp_path / 'out.pth').exists()


def test_command_line_refuses_without_running_it(tmp_path, repo_root, subprocess_env):
    """The same refusal as a command: exit status 1, the import named, no marker, no file."""
    marker = tmp_path / 'PAYLOAD_RAN'
    evil = tmp_path / 'evil.pth'
    torch.save(dict(note=System(marker)), evil)
    out = subprocess.run([sys.executable, TOOL, str(evil), str(tmp_path / 'safe.pth')], cwd=repo_root,
                         env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and f'would import {os.name}.system' in out.stderr, out.stdout + out.stderr
    assert not marker.exists() and not (tmp_path / 'safe.pth').exists()
