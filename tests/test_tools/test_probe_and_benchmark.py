"""The EmbeddedShapes probe (tools/train_probe.py, the ShapesProbe extractor) and tools/benchmark.py."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from cli import run_cli

from mmspectral.evaluation.embedded_classifier import render_batch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def train_probe(argv):
    """tools/train_probe.py's command line, in this process."""
    return run_cli('tools/train_probe.py', argv)


def eval_fid(argv):
    """tools/eval_fid.py's command line, in this process."""
    return run_cli('tools/eval_fid.py', argv)


def _write_npz(path, images: torch.Tensor, labels) -> str:
    arr = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    np.savez(path, arr_0=arr, labels=np.asarray(labels))
    return str(path)


@pytest.fixture(scope='module')
def probe(tmp_path_factory):
    """A probe trained briefly at 32 px (the test's own file)."""
    path = str(tmp_path_factory.mktemp('probe') / 'probe_32px.pth')
    result = train_probe(['--out', path, '--image-size', '32', '--steps', '120'])
    assert result['probe_real_accuracy'] > 0.7
    return path


def test_probe_tells_real_samples_from_wrong_classes_and_noise(probe, tmp_path, repo_root):
    images, labels = render_batch(range(100), 32, seed=11)
    real_npz = _write_npz(tmp_path / 'real.npz', images, labels)
    real = train_probe(['--out', probe, '--image-size', '32', '--samples', real_npz])
    wrong = train_probe(['--out', probe, '--image-size', '32', '--samples',
                         _write_npz(tmp_path / 'wrong.npz', images, (labels + 1) % 10)])
    noise = train_probe(['--out', probe, '--image-size', '32', '--samples',
                         _write_npz(tmp_path / 'noise.npz', torch.rand_like(images), labels)])
    assert real['class_accuracy'] > 0.7 and wrong['class_accuracy'] < 0.3
    assert real['probe_fd'] < 0.2 * noise['probe_fd']
    assert real['probe_recall'] > noise['probe_recall'] and real['probe_precision'] > noise['probe_precision']
    with open(tmp_path / 'real_probe.json') as f:
        assert json.load(f)['class_accuracy'] == real['class_accuracy']
    big, big_labels = render_batch(range(10), 48, seed=11)
    with pytest.raises(SystemExit, match='--image-size 48'):
        train_probe(['--out', probe, '--samples', _write_npz(tmp_path / 'big.npz', big, big_labels)])
    # Super-resolved samples (twice the size) are judged resized to the probe's input, as FID resizes to 299.
    double, double_labels = render_batch(range(100), 64, seed=11)
    resized = train_probe(['--out', probe, '--resize', '--samples',
                           _write_npz(tmp_path / 'double.npz', double, double_labels)])
    assert resized['resized_from'] == 64 and resized['class_accuracy'] > 0.7
    assert resized['probe_fd'] < 0.2 * noise['probe_fd']
    with pytest.raises(ValueError, match="'fine' EmbeddedShapes classes, not the 'coarse' ones"):
        train_probe(['--out', probe, '--class-set', 'coarse'])  # an existing probe of the other class set


def test_shapes_probe_plugs_into_eval_fid(probe, tmp_path, repo_root):
    a, la = render_batch(range(80), 32, seed=21)
    b, lb = render_batch(range(80), 32, seed=22)
    ref, same = _write_npz(tmp_path / 'a.npz', a, la), _write_npz(tmp_path / 'b.npz', b, lb)
    noise = _write_npz(tmp_path / 'n.npz', torch.rand_like(b), lb)
    common = ['--ref', ref, '--extractor', 'ShapesProbe', '--extractor-options', f'checkpoint={probe}',
              '--no-sfid']
    close = eval_fid([same, '--out', str(tmp_path / 'm1.json')] + common)
    far = eval_fid([noise, '--out', str(tmp_path / 'm2.json')] + common)
    assert close['fid'] < 0.2 * far['fid']
    assert close['inception_score'] > far['inception_score']
    missing = str(tmp_path / 'none.pth')
    with pytest.raises(FileNotFoundError, match='train_probe.py'):
        eval_fid([same, '--ref', ref, '--extractor', 'ShapesProbe', '--extractor-options',
                  f'checkpoint={missing}'])


def test_benchmark_compares_configs_and_reports_quality(probe, tmp_path, repo_root, subprocess_env):
    config = osp.join(repo_root, 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py')
    p4 = tmp_path / 'p4.py'
    p4.write_text(f"_base_ = [{config!r}]\nmodel = dict(generator=dict(attn_mask=dict(_delete_=True, "
                  "type='BlockCausalMask', block_size=4)))\n")
    # A 'trained' checkpoint: random weights saved as a Runner would (state_dict), at 32 px for the probe.
    from mmspectral.apis import load_config
    from mmspectral.registry import MODELS
    options = ['model.tokenizer.image_size=32', 'model.tokenizer.patch_size=8',
               'model.tokenizer_checkpoint=None', 'model.tokenizer.freq_schedule.type=UniformFreqSchedule']
    cfg = load_config(config, {'model.tokenizer.image_size': 32, 'model.tokenizer.patch_size': 8,
                               'model.tokenizer.freq_schedule.type': 'UniformFreqSchedule'})
    cfg.model.tokenizer_checkpoint = None
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'gen.pth')
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict(), meta=dict()), ckpt)

    out = str(tmp_path / 'bench')
    # A subprocess, as users run it: every config is measured in a spawned child that imports the script.
    subprocess.run([sys.executable, 'tools/benchmark.py', config, str(p4), '--checkpoints', ckpt, '-',
                    '--iters', '1', '--batch-size', '2', '--train-batch-size', '4', '--no-wait', '--out-dir',
                    out, '--quality-per-class', '2', '--probe', probe, '--cfg-options'] + options,
                   cwd=repo_root, env=subprocess_env, check=True)
    rows = json.load(open(osp.join(out, 'benchmark.json')))
    d4, d4p4 = rows
    assert (d4['num_tokens'], d4['ar_steps'], d4p4['ar_steps']) == (16, 16, 4)
    # + 3 start positions
    assert d4['generator_params_m'] == pytest.approx(d4p4['generator_params_m'], rel=1e-3)
    for row in rows:
        for key in ('sample_images_per_s', 'decode_images_per_s', 'train_images_per_s', 'sample_peak_mib'):
            assert row[key] > 0
        assert row['train_tokens_per_s'] == pytest.approx(row['train_images_per_s'] * row['num_tokens'])
    assert 0.0 <= d4['class_accuracy'] <= 1.0 and d4['probe_fd'] >= 0
    assert 'class_accuracy' not in d4p4  # no checkpoint: no quality columns
    table = open(osp.join(out, 'benchmark.md')).read()
    assert 'probe class acc.' in table and table.count('\n') == 4
    assert open(osp.join(out, 'benchmark.csv')).read().splitlines()[0].startswith('model,')
