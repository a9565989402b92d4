"""tools/analysis/ablation_tiny.sh end to end at toy length: one row, the per-seed folders, the tokenizer's
own ceiling next to its samples, and the summary table."""
import json
import subprocess
import sys

import pytest
import torch


def test_position_perplexity_counts_the_codes_each_position_uses():
    from mmspectral.evaluation import position_perplexity
    ids = torch.stack([torch.zeros(8, dtype=torch.long), torch.arange(8), torch.arange(8) % 2], 1)  # (8, 3)
    assert position_perplexity(ids, 16) == pytest.approx([1.0, 8.0, 2.0], rel=1e-5)


def test_low_pass_images_of_a_row_without_spectral_supervision_are_labelled_as_not_its_targets():
    """The TiTok-tokens and nested rows have a schedule, so the progression compares their prefixes with
    low-pass images; the JSON says these were never the row's targets."""
    from mmspectral.analysis.ablation import label_targets as label
    from mmspectral.models import NestedSpectralTokenizer
    tiny = dict(arch='B', width=32, depth=1, num_heads=2, image_size=32, patch_size=16, num_tokens=4,
                token_size=4, codebook_size=16, freq_schedule=dict(type='UniformFreqSchedule'))
    for supervised, targets in ((True, 'lowpass'), (False, 'full_image')):
        tokenizer = NestedSpectralTokenizer(**tiny, spectral_supervision=supervised)
        result = label(dict(progression=dict(lowpass_targets={}, omegas=[8, 16, 24, 32])), tokenizer)
        assert result['prefix_targets'] == targets
        assert ('lowpass_targets_note' in result['progression']) == (not supervised)


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
    # the nested row trains every prefix towards the whole image: its low-pass images are labelled
    assert ceiling['prefix_targets'] == 'full_image' and 'never' in progression['lowpass_targets_note']
    table = (tmp_path / 'table4.md').read_text()
    assert '| nested prefixes, full-image targets |' in table and 'Seeds: 3' in table
    assert 'Progression: of the 15 steps' in table and '| PSNR k=16 |' in table
