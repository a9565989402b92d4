"""Real MMEngine runs of a tiny model: single process, resume, load_from, --amp, and 2-process gloo DDP."""
import glob
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import run_launch

from mmspectral.apis import build_runner, load_config
from mmspectral.engine import AutocastOptimWrapper, find_latest_checkpoint, init_distributed

CONFIG = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data', 'tiny_autoencoder_config.py')
LOSS_RE = re.compile(r'Iter\(train\) \[\s*(\d+)/\d+\].*?loss_rec: ([0-9.]+)')


def run_tool(args, env, cwd, timeout=300):
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def losses(log):
    return {int(i): float(v) for i, v in LOSS_RE.findall(log)}


def make_runner(tmp_path, **overrides):
    cfg = load_config(CONFIG)
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = f'{tmp_path.parent.name}-{tmp_path.name}-{len(overrides)}-{id(overrides)}'
    cfg.merge_from_dict(overrides)
    return build_runner(cfg)


def test_train_then_resume_and_load(tmp_path):
    runner = make_runner(tmp_path / 'a', **{'train_cfg.max_iters': 4})
    runner.train()
    assert runner.iter == 4
    trained = {k: v.clone() for k, v in runner.model.state_dict().items()}
    ckpt = find_latest_checkpoint(str(tmp_path / 'a'))
    assert ckpt.endswith('iter_4.pth')

    resumed = make_runner(tmp_path / 'a', resume=True, **{'train_cfg.max_iters': 6})
    resumed.load_or_resume()  # the Runner's own checkpoint: HistoryBuffer and all, on current torch
    assert resumed.iter == 4
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, trained[k])
    resumed.train()
    assert resumed.iter == 6

    loaded = make_runner(tmp_path / 'b', load_from=ckpt)
    loaded.load_or_resume()
    assert loaded.iter == 0  # load_from takes the weights, not the progress
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, trained[k])


def test_autocast_optim_wrapper_casts_forward(monkeypatch):
    monkeypatch.setenv('MMSPECTRAL_CPU_BF16', '1')  # 'auto' is bf16 where bf16 is native (docs: precision)
    model = torch.nn.Linear(4, 4)
    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        assert model(torch.randn(2, 4)).dtype == torch.bfloat16
    assert model(torch.randn(2, 4)).dtype == torch.float32
    plain = AutocastOptimWrapper(dtype='float32', optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with plain.optim_context(model):
        assert model(torch.randn(2, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match='dtype'):
        AutocastOptimWrapper(dtype='int8', optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_init_distributed_explains_missing_pieces(monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match='tools/dist_train.sh'):
        init_distributed('pytorch')
    assert init_distributed('none') is False
    with pytest.raises(ValueError, match='Unknown launcher'):
        init_distributed('ssh')
    if not torch.cuda.is_available():
        monkeypatch.setenv('RANK', '0')
        monkeypatch.setenv('WORLD_SIZE', '1')
        monkeypatch.setenv('LOCAL_RANK', '0')
        monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
        monkeypatch.setenv('MASTER_PORT', '29999')
        with pytest.raises(RuntimeError, match="backend='gloo'"):
            init_distributed('pytorch', backend='nccl')


@pytest.mark.slow
def test_train_tool_amp_and_resume_in_moved_work_dir(tmp_path, repo_root, subprocess_env):
    py = sys.executable
    log = run_tool([py, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'w'), '--amp',
                    '--cfg-options', 'train_cfg.max_iters=4'], subprocess_env, repo_root)
    assert "type='AutocastOptimWrapper'" in log and sorted(losses(log)) == [1, 2, 3, 4]
    from mmspectral.utils.precision import cpu_bf16_native
    assert "dtype='auto'" in log  # --amp turns the config's fp32 into 'auto' ...
    assert cpu_bf16_native() or 'no native bf16' in log  # ... which says when it stays fp32
    os.rename(tmp_path / 'w', tmp_path / 'moved')
    log = run_tool([py, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'moved'), '--resume',
                    '--cfg-options', 'train_cfg.max_iters=6'], subprocess_env, repo_root)
    assert 'resumed epoch: 0, iter: 4' in log
    assert sorted(losses(log)) == [5, 6]


@pytest.mark.slow
def test_dist_train_two_cpu_processes(tmp_path, repo_root, subprocess_env, free_port):
    env = dict(subprocess_env, PYTHON=sys.executable, PORT=str(free_port))
    log = run_launch(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(tmp_path)], env,
                     repo_root)
    assert 'backend=gloo, rank 0 of 2' in log and 'backend=gloo, rank 1 of 2' in log
    assert 'Distributed training: True' in log
    # The iterations from rank 0's log file: on the shared console, the other rank's lines may cut into them.
    rank0 = ''.join(open(path).read() for path in glob.glob(str(tmp_path / '*' / '*.log')))
    assert sorted(losses(rank0)) == list(range(1, 7))
    assert os.path.isfile(tmp_path / 'iter_6.pth')
    # The DDP-trained checkpoint resumes in a single process.
    log = run_tool([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--resume',
                    '--cfg-options', 'train_cfg.max_iters=7'], subprocess_env, repo_root)
    assert sorted(losses(log)) == [7]


@pytest.mark.slow
def test_test_tool_evaluates_a_checkpoint(tmp_path, repo_root, subprocess_env):
    runner = make_runner(tmp_path / 'train', **{'train_cfg.max_iters': 2})
    runner.train()
    ckpt = str(tmp_path / 'train' / 'iter_2.pth')
    log = run_tool([sys.executable, 'tools/test.py', CONFIG, ckpt, '--work-dir', str(tmp_path / 'test')],
                   subprocess_env, repo_root)
    assert 'Load checkpoint from' in log and re.search(r'count: 24', log)
    proc = subprocess.run([sys.executable, 'tools/test.py', CONFIG, str(tmp_path / 'missing.pth')],
                          cwd=repo_root, env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'missing.pth' in proc.stderr


def test_env_cfg_allow_tf32_reaches_torch(tmp_path):
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        make_runner(tmp_path, **{'env_cfg.allow_tf32': True})
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_frozen_parameters_are_summarised_in_one_log_line(tmp_path):
    import logging
    runner = make_runner(tmp_path)
    for param in list(runner.model.parameters())[:3]:
        param.requires_grad_(False)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    runner.logger.addHandler(handler)
    try:
        runner.build_optim_wrapper(dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                                        paramwise_cfg=dict(norm_decay_mult=0.0)))
    finally:
        runner.logger.removeHandler(handler)
    messages = [record.getMessage() for record in records]
    assert not any('is skipped since' in message for message in messages)  # MMEngine writes one per parameter
    assert '3 frozen parameters (requires_grad=False) are left out of the optimizer.' in messages
    assert not runner.logger.filters  # the filter is gone afterwards
