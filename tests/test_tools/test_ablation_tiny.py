"""tools/analysis/ablation_tiny.sh end to end at toy length: one row, the per-seed folders, the tokenizer's
own ceiling next to its samples, and the summary table."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch


def test_position_perplexity_counts_the_codes_each_position_uses(repo_root):
    path = osp.join(repo_root, 'tools', 'analysis', 'ablation_row_metrics.py')
    spec = importlib.util.spec_from_file_location('ablation_row_metrics', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ids = torch.stack([torch.zeros(8, dtype=torch.long), torch.arange(8), torch.arange(8) % 2], 1)  # (8, 3)
    assert module.position_perplexity(ids, 16) == pytest.approx([1.0, 8.0, 2.0], rel=1e-5)


def test_ablation_tiny_runs_a_row_with_its_ceiling(tmp_path, subprocess_env, repo_root):
    env = dict(subprocess_env, MMSPECTRAL_USE_PYTHON=sys.executable, OMP_NUM_THREADS='2',
               WORK_DIR=str(tmp_path), ROWS='nested', SEEDS='3', TOKENIZER_ITERS='6', GENERATOR_ITERS='6',
               NUM_TRAIN_IMAGES='20', NUM_VAL_IMAGES='10', PER_CLASS='1', NUM_CEILING_IMAGES='10')
    proc = subprocess.run(['bash', 'tools/analysis/ablation_tiny.sh'], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = tmp_path / 'nested' / 'seed3'
    assert (row / 'tokenizer' / 'iter_6.pth').is_file() and (row / 'generator' / 'iter_6.pth').is_file()
    ceiling = json.loads((row / 'tokenizer_ceiling.json').read_text())
    assert len(ceiling['position_perplexity']) == 16 and ceiling['num_images'] == 10
    assert 0 <= ceiling['reconstructions']['class_accuracy'] <= 1 and ceiling['fidelity']['blockiness'] > 0
    assert list(ceiling['band_psnr']) == ['w0-2', 'w2-4', 'w4-8', 'w8-16', 'w16-32', 'w32-64']
    progression = ceiling['progression']
    assert len(progression['reconstructions']['psnr_to_image']) == 16
    assert len(progression['samples']['step_change']) == 15 and progression['omegas'][-1] == 64
    table = (tmp_path / 'table4.md').read_text()
    assert '| nested prefixes, full-image targets |' in table and 'Seeds: 3' in table
    assert 'Progression: of the 15 steps' in table and '| PSNR k=16 |' in table
