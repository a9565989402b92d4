"""The benchmark scripts run end to end at toy sizes (their figures come from full runs: docs/results.md)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from cli import run_cli

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_GENERATOR = 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'


def analysis_cli(name, argv):
    """tools/analysis/<name>.py's command line, in this process."""
    return run_cli(f'tools/analysis/{name}.py', argv)


def test_cost_curves_write_table_figure_and_floors_that_scale_as_they_should(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = analysis_cli('cost_curves', [
        '--tokens', '16', '64', '--batch-sizes', '1', '2', '--depth', '1', '--resolutions', '128', '256',
        '--tokenizer-width', '64', '--tokenizer-depth', '1', '--tokenizer-batch', '1', '--no-wait',
        '--out', str(tmp_path)])
    assert (tmp_path / 'cost_curves.png').stat().st_size > 10_000
    assert json.loads((tmp_path / 'cost_curves.json').read_text())['sampling'] == out['sampling']
    rows = {(r['tokens'], r['batch']): r for r in out['sampling'][1:]}
    assert set(rows) == {(16, 1), (16, 2), (64, 1), (64, 2)}
    assert all(r['seconds_per_image'] > 0 for r in rows.values())
    # Weight streaming: one read per step shared by the batch (1/B), one step per token (N).
    assert rows[(16, 2)]['stream_floor'] == pytest.approx(rows[(16, 1)]['stream_floor'] / 2)
    assert rows[(64, 1)]['stream_floor'] == pytest.approx(4 * rows[(16, 1)]['stream_floor'])
    # Compute: per image, independent of B; more than linear in N (attention over the cache outgrows the
    # once-per-image AdaLN).
    assert rows[(16, 2)]['compute_floor'] == pytest.approx(rows[(16, 1)]['compute_floor'])
    assert rows[(64, 1)]['compute_floor'] > 4 * rows[(16, 1)]['compute_floor']
    assert [r['patches'] for r in out['tokenizer']] == [64, 256]
    assert all(r[k] > 0 for r in out['tokenizer'] for k in ('encode', 'decode', 'train_step'))
    assert '| 256 | 256 |' in (tmp_path / 'cost_curves.md').read_text()


def test_cost_curves_skip_bf16_on_a_cpu_without_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('MMSPECTRAL_CPU_BF16', '0')
    out = analysis_cli('cost_curves', ['--dtype', 'bf16', '--no-wait', '--out', str(tmp_path)])
    assert 'no native bf16' in out['skipped'] and 'skipping the bf16 rows' in capsys.readouterr().out


def test_pipeline_benchmark_times_sampling_and_decoding_in_both_dtypes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    args = ['--config', TINY_GENERATOR, '--batch-size', '2', '--repeats', '1', '--no-wait',
            '--out', str(tmp_path)]
    monkeypatch.setenv('MMSPECTRAL_CPU_BF16', '0')  # a CPU without native bf16: its bf16 rows are skipped
    out = analysis_cli('benchmark_pipeline', args)
    assert [row['dtype'] for row in out['rows']] == ['fp32']
    printed = capsys.readouterr().out
    assert '# CPU: ' in printed and 'skipping the bf16 rows' in printed and 'no native bf16' in printed
    monkeypatch.setenv('MMSPECTRAL_CPU_BF16', '1')  # one with it (here emulated: the rows run, slowly)
    out = analysis_cli('benchmark_pipeline', args)
    assert [row['dtype'] for row in out['rows']] == ['fp32', 'bf16']
    for row in out['rows']:
        assert row['total'] == pytest.approx(row['sampling'] + row['decoding']) and row['decoding'] > 0
        assert 'var_whole' not in row  # no --var-repo
    assert '| fp32 |' in (tmp_path / 'pipeline.md').read_text()


@pytest.mark.parametrize('script, flag, repo', [('benchmark_pipeline', '--var-repo', 'FoundationVision/VAR'),
                                                ('benchmark_titok_official', '--titok-repo',
                                                 'bytedance/1d-tokenizer')])
def test_side_by_side_benchmarks_name_the_missing_peer_checkout(tmp_path, script, flag, repo):
    with pytest.raises(FileNotFoundError, match=f'not a checkout of {repo}.*downloads nothing'):
        analysis_cli(script, [flag, str(tmp_path / 'nothing_here'), '--out', str(tmp_path / 'out')])


def test_gpu_bench_without_a_gpu_writes_its_table_with_every_line_skipped(tmp_path):
    analysis_cli('gpu_bench', ['--dry-run', '--out', str(tmp_path / 'table.md')])
    table = (tmp_path / 'table.md').read_text()
    assert table.startswith('# GPU check: no CUDA device') and '| sampling d16,' in table
    assert table.count('skipped (no CUDA)') >= 6


def test_sampling_benchmark_refuses_bad_sizes_before_building_anything(capsys):
    with pytest.raises(SystemExit) as info:  # ImageNet-sized models: its runs are measured, not tested
        analysis_cli('benchmark_sampling', ['--batch-sizes', '0', '--no-wait'])
    assert info.value.code == 2 and '--batch-sizes: must be an integer >= 1' in capsys.readouterr().err


def test_table3_tiny_names_the_missing_quick_start_before_any_work(tmp_path, subprocess_env):
    env = dict(subprocess_env, MMSPECTRAL_USE_PYTHON=sys.executable, QUICKSTART_DIR=str(tmp_path / 'none'),
               WORK_DIR=str(tmp_path / 'table3'))
    proc = subprocess.run(['bash', 'tools/analysis/table3_tiny.sh'], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'iter_1000.pth is missing: run bash tools/quickstart.sh first' in proc.stderr
    assert not (tmp_path / 'table3').exists()


def test_profile_steps_counts_the_flops_a_transformer_step_costs(tmp_path):
    """The generator's step: 6 FLOPs per weight of every per-token matmul per token (forward 2, backward 4)
    plus attention and the per-sample modulation, which are small at 16 tokens; the tokenizer's step runs
    and names its operators."""
    import torch.nn as nn
    out = analysis_cli('profile_steps', ['--iters', '1', '--top', '3', '--out', tmp_path / 'profile.json',
                                         '--generator-options', 'train_dataloader.batch_size=8'])
    written = json.loads((tmp_path / 'profile.json').read_text())
    assert written['generator']['gflop'] == out['generator']['gflop']
    from mmspectral.apis import load_config
    from mmspectral.registry import GENERATORS
    gen_cfg = load_config(osp.join(REPO, TINY_GENERATOR)).model.generator
    gen = GENERATORS.build(gen_cfg)
    per_token = sum(m.weight.numel() for name, m in gen.named_modules()
                    if isinstance(m, nn.Linear) and 'ada_lin' not in name)
    expected = 6 * per_token * 8 * gen_cfg['num_tokens'] / 1e9
    assert expected <= out['generator']['gflop'] <= 1.15 * expected
    assert out['generator']['batch_size'] == 8 and len(out['tokenizer']['ops']) == 3
    assert 0 < out['tokenizer']['peak_share'] and out['tokenizer']['gflop'] > 0
