"""Launch scripts, and data-parallel training that equals one-process training (DDP, FSDP, accumulation).

Every run trains the same tiny generator (depth 2, width 32, no dropout, no label dropout) from the same
initial weights on the same global batch of 8 token sequences per update: one process with batch 8 (the
reference), one process with batch 2 and 4 accumulated steps, two DDP processes with 4 each, and two FSDP
processes with 2 each and 2 accumulated steps. DDP and FSDP average gradients over ranks, so the mean of the
ranks' losses must equal the reference loss and the final weights the reference weights. SGD with momentum,
weight decay on matrices only and an active gradient clip make wrong parameter groups or a per-shard
clipping norm visible.
"""
import json
import os
import os.path as osp
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from conftest import run_launch

from mmspectral.apis import build_runner, load_config
from mmspectral.registry import MODELS

CONFIG = textwrap.dedent("""
    _base_ = ['{root}/configs/_base_/default_runtime.py']
    custom_imports = dict(imports=['record_losses'], allow_failed_imports=False)
    model = dict(
        type='GeneratorModel',
        generator=dict(type='SpectralARGenerator', depth=2, width=32, num_heads=2, vocab_size=16,
                       num_tokens=8, num_classes=4, cond_drop_rate=0.0, drop_path_rate=0.0),
        num_position_bins=2,
    )
    train_dataloader = dict(
        batch_size=8, num_workers=0, persistent_workers=False, pin_memory=False,
        sampler=dict(type='InfiniteSampler', shuffle=True, seed=0), collate_fn=dict(type='default_collate'),
        dataset=dict(type='TokenDataset', data_root='{data}', variant='first'))
    optim_wrapper = dict(
        type='AutocastOptimWrapper', dtype='float32',
        optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=0.1),
        clip_grad=dict(max_norm=0.5),
        paramwise_cfg=dict(flat_decay_mult=0.0))
    train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=1000)
    default_hooks = dict(
        logger=dict(type='LoggerHook', interval=1),
        checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, save_last=True))
    custom_hooks = [dict(type='RecordLossesHook')]
    log_processor = dict(by_epoch=False, window_size=1)
    visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    randomness = dict(seed=0)
    load_from = '{init}'  # the same initial weights everywhere, whatever each runner draws from the RNG first
""")

# Registered from the config folder through custom_imports, as a user's own hook would be.
RECORD_HOOK = textwrap.dedent("""
    import json
    import os.path as osp

    from mmengine.dist import get_rank
    from mmengine.hooks import Hook

    from mmspectral.registry import HOOKS


    @HOOKS.register_module(force=True)
    class RecordLossesHook(Hook):
        \"\"\"Writes this rank's loss of every iteration (mean over its micro-batch) into the work dir.\"\"\"

        def before_run(self, runner):
            self.losses = []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.losses.append(float(outputs['loss'].detach()))

        def after_run(self, runner):
            with open(osp.join(runner.work_dir, f'losses_rank{get_rank()}.json'), 'w') as f:
                json.dump(self.losses, f)
""")

FSDP_CONFIG = textwrap.dedent("""
    _base_ = ['./tiny.py', '{root}/configs/_base_/schedules/generator_fsdp.py']
    runner_type = 'SpectralFlexibleRunner'
""")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A token dataset (64 sequences of 8 tokens, 4 classes) and the tiny configs."""
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    tmp = tmp_path_factory.mktemp('dist')
    data = tmp / 'tokens'
    data.mkdir()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 64)
    tokens = (labels[:, None, None] * 3 + rng.integers(0, 5, (64, 1, 8))) % 16  # (images, variants, N)
    np.save(data / 'shard000-of-001_tokens.npy', tokens.astype(np.int16))
    np.save(data / 'shard000-of-001_labels.npy', labels.astype(np.int64))
    meta = dict(complete=True, num_images=64, done=64, num_tokens=8, vocab_size=16, num_variants=1,
                world_size=1, classes=['a', 'b', 'c', 'd'])
    (data / 'meta.json').write_text(json.dumps(meta))
    (tmp / 'record_losses.py').write_text(RECORD_HOOK)
    (tmp / 'tiny.py').write_text(CONFIG.format(root=root, data=data, init=tmp / 'init.pth'))
    (tmp / 'tiny_fsdp.py').write_text(FSDP_CONFIG.format(root=root))
    torch.manual_seed(0)
    model = MODELS.build(load_config(str(tmp / 'tiny.py')).model)
    torch.save(dict(state_dict=model.state_dict()), tmp / 'init.pth')
    return tmp


def train_here(cfg_path, work_dir, options):
    """One process, in this interpreter."""
    cfg = load_config(str(cfg_path), options)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'dist-{osp.basename(str(work_dir))}'
    build_runner(cfg).train()


def run(args, env, cwd, timeout=240):
    return run_launch(args, env, cwd, timeout=timeout)


def rank_losses(work_dir, world, accumulate=1):
    """Mean over ranks and accumulated micro-steps: the loss of each update over the global batch."""
    per_rank = [json.loads((work_dir / f'losses_rank{r}.json').read_text()) for r in range(world)]
    losses = np.mean(per_rank, axis=0)
    return losses.reshape(-1, accumulate).mean(1)


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


def assert_same_weights(a, b, atol=2e-6):
    assert sorted(a) == sorted(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


@pytest.fixture(scope='module')
def reference(setup):
    train_here(setup / 'tiny.py', setup / 'ref', {})
    return rank_losses(setup / 'ref', 1), weights(setup / 'ref' / 'iter_4.pth')


def fake_python(tmp_path):
    """An interpreter stand-in that prints its arguments, one a line."""
    fake = tmp_path / 'fakepy'
    fake.write_text('#!/usr/bin/env bash\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    return str(fake)


def test_launch_scripts_pass_torchrun_and_srun_arguments(tmp_path, repo_root):
    unset = ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT', 'GPUS', 'GPUS_PER_NODE')
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env['PYTHON'] = fake_python(tmp_path)
    tools = osp.join(repo_root, 'tools')

    def argv(cmd, **extra):
        out = subprocess.run(cmd, cwd=repo_root, env=dict(env, **extra), capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    torchrun = ['-m', 'torch.distributed.run']
    assert argv(['bash', 'tools/dist_train.sh', 'cfg.py', '8', '--amp']) == torchrun + [
        '--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1', '--master_port=29500', '--nproc_per_node=8',
        f'{tools}/train.py', 'cfg.py', '--launcher', 'pytorch', '--amp']
    assert argv(['bash', 'tools/dist_train.sh', 'cfg.py', '8', '--work-dir', 'w'], NNODES='4', NODE_RANK='3',
                MASTER_ADDR='10.1.2.3', PORT='29999') == torchrun + [
        '--nnodes=4', '--node_rank=3', '--master_addr=10.1.2.3', '--master_port=29999', '--nproc_per_node=8',
        f'{tools}/train.py', 'cfg.py', '--launcher', 'pytorch', '--work-dir', 'w']
    assert argv(['bash', 'tools/dist_test.sh', 'cfg.py', 'ck.pth', '2', '--out', 'x'], NNODES='2',
                NODE_RANK='1', MASTER_ADDR='h0', PORT='1234') == torchrun + [
        '--nnodes=2', '--node_rank=1', '--master_addr=h0', '--master_port=1234', '--nproc_per_node=2',
        f'{tools}/test.py', 'cfg.py', 'ck.pth', '--launcher', 'pytorch', '--out', 'x']

    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text((tmp_path / 'fakepy').read_text())
    (bin_dir / 'srun').chmod(0o755)
    path = f'{bin_dir}{os.pathsep}{env["PATH"]}'
    srun = argv(['bash', 'tools/slurm_train.sh', 'part', 'job', 'cfg.py', 'w', '32', '--amp'], PATH=path)
    assert srun[:2] == ['-p', 'part'] and '--job-name=job' in srun and '--ntasks=32' in srun
    assert '--ntasks-per-node=8' in srun and '--gres=gpu:8' in srun
    assert srun[-8:] == [env['PYTHON'], '-u', f'{tools}/train.py', 'cfg.py', '--work-dir=w', '--launcher',
                         'slurm', '--amp']
    srun = argv(['bash', 'tools/slurm_train.sh', 'part', 'job', 'cfg.py', 'w'], PATH=path, GPUS='4')
    assert '--ntasks=4' in srun and '--ntasks-per-node=4' in srun and srun[-1] == 'slurm'
    usage = subprocess.run(['bash', 'tools/dist_train.sh', 'cfg.py'], cwd=repo_root, env=env,
                           capture_output=True, text=True)
    assert usage.returncode == 2 and 'usage' in usage.stderr


def test_adaln_wrap_policy_selects_the_sublayers_of_every_block():
    from torch.distributed.fsdp.wrap import _recursive_wrap

    from mmspectral.engine import adaln_block_wrap_policy
    from mmspectral.models.generators.spectral_ar import SpectralARGenerator

    gen = SpectralARGenerator(depth=2, width=32, num_heads=2, vocab_size=16, num_tokens=8, num_classes=4)
    wrapped = []

    def record(module, **kwargs):
        wrapped.append(module)
        return module

    _recursive_wrap(gen, auto_wrap_policy=adaln_block_wrap_policy, wrapper_cls=record, ignored_modules=set(),
                    ignored_params=set(), only_wrap_children=True)
    expected = [m for block in gen.blocks for m in (block.ada_lin, block.attn, block.ffn)]
    assert sorted(map(id, wrapped)) == sorted(map(id, expected))


def test_gradient_accumulation_equals_the_full_batch(setup, reference):
    train_here(setup / 'tiny.py', setup / 'accum', {
        'train_dataloader.batch_size': 2, 'train_cfg.max_iters': 16, 'optim_wrapper.accumulative_counts': 4})
    ref_losses, ref_weights = reference
    np.testing.assert_allclose(rank_losses(setup / 'accum', 1, accumulate=4), ref_losses, rtol=0, atol=1e-5)
    assert_same_weights(weights(setup / 'accum' / 'iter_16.pth'), ref_weights)


def test_flexible_runner_compiles_the_forward_in_one_process(setup, reference):
    """SpectralFlexibleRunner passes the config's compile on (MMEngine's FlexibleRunner.from_cfg drops it).

    The eager backend checks the plumbing without a C++ compiler. Compiling the default target, train_step,
    fails in torch 2.14 while tracing the optimizer step (docs/distributed.md), hence target='forward'.
    """
    train_here(setup / 'tiny.py', setup / 'compiled', {'runner_type': 'SpectralFlexibleRunner',
                                                       'compile': dict(backend='eager', target='forward')})
    log = open(next((setup / 'compiled').glob('*/*.log'))).read()
    assert 'Model has been "compiled"' in log
    np.testing.assert_allclose(rank_losses(setup / 'compiled', 1), reference[0], rtol=0, atol=1e-5)


def test_flexible_runner_killed_while_saving_leaves_no_partial_checkpoint(setup, monkeypatch):
    """A save that dies half-way leaves the older checkpoints and no partial iter_N.pth; auto-resume
    cleans up."""
    import mmengine.runner.checkpoint as mm_checkpoint

    from mmspectral.engine import find_latest_checkpoint
    from mmspectral.engine.checkpoint import checkpoint_defect
    real_save, written = mm_checkpoint.save_checkpoint, []

    def dies_on_second_save(checkpoint, filename, *args, **kwargs):
        written.append(filename)
        if len(written) == 2:
            with open(filename, 'wb') as f:
                f.write(b'PK\x03\x04 torn')  # a zip header and nothing else
            raise KeyboardInterrupt('killed while saving')
        return real_save(checkpoint, filename, *args, **kwargs)

    monkeypatch.setattr(mm_checkpoint, 'save_checkpoint', dies_on_second_save)
    work = setup / 'killed'
    with pytest.raises(KeyboardInterrupt):
        train_here(setup / 'tiny.py', work, {'runner_type': 'SpectralFlexibleRunner',
                                             'train_cfg.max_iters': 8,
                                             'default_hooks.checkpoint.interval': 4})
    assert [osp.basename(f) for f in written] == ['iter_4.pth.tmp', 'iter_8.pth.tmp']
    assert not (work / 'iter_8.pth').exists()
    assert checkpoint_defect(str(work / 'iter_4.pth')) is None
    assert find_latest_checkpoint(str(work)) == str(work / 'iter_4.pth')

    # Auto-resume removes what the kill left (the torn file, and a shard folder of a sharded save) and
    # finishes.
    (work / 'iter_12.pth.tmp').mkdir()
    (work / 'iter_12.pth.tmp' / 'rank0.pth').write_bytes(b'PK\x03\x04 torn')
    monkeypatch.setattr(mm_checkpoint, 'save_checkpoint', real_save)
    train_here(setup / 'tiny.py', work, {'runner_type': 'SpectralFlexibleRunner', 'train_cfg.max_iters': 8,
                                         'default_hooks.checkpoint.interval': 4, 'resume': True,
                                         'load_from': None})
    assert sorted(p.name for p in work.glob('*.pth*')) == ['iter_4.pth', 'iter_8.pth']
    assert checkpoint_defect(str(work / 'iter_8.pth')) is None


def test_set_tf32_switches_matmuls_and_convolutions():
    from mmspectral.engine import set_tf32
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        set_tf32(True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        set_tf32(False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.slow
def test_ddp_two_processes_equal_one(setup, reference, repo_root, subprocess_env):
    env = dict(subprocess_env, PYTHON=sys.executable, PORT=str(free_ports(1)[0]))
    log = run(['bash', 'tools/dist_train.sh', str(setup / 'tiny.py'), '2', '--work-dir', str(setup / 'ddp'),
               '--cfg-options', 'train_dataloader.batch_size=4'], env, repo_root)
    assert 'backend=gloo, rank 1 of 2' in log
    ref_losses, ref_weights = reference
    np.testing.assert_allclose(rank_losses(setup / 'ddp', 2), ref_losses, rtol=0, atol=1e-5)
    assert_same_weights(weights(setup / 'ddp' / 'iter_4.pth'), ref_weights)


@pytest.mark.slow
def test_fsdp_two_processes_equal_one_and_write_one_checkpoint(setup, reference, repo_root, subprocess_env):
    """The shipped FSDP base (full state dict on rank 0), with accumulation: 2 ranks x 2 micro-batches x 2."""
    env = dict(subprocess_env, PYTHON=sys.executable, PORT=str(free_ports(1)[0]))
    # --skip-checks: tools/train.py's checkpoint pre-check reads runner.model, which FlexibleRunner builds
    # only in train().
    log = run(['bash', 'tools/dist_train.sh', str(setup / 'tiny_fsdp.py'), '2', '--work-dir',
               str(setup / 'fsdp'), '--skip-checks', '--cfg-options', 'train_dataloader.batch_size=2',
               'train_cfg.max_iters=8', 'optim_wrapper.accumulative_counts=2',
               'default_hooks.checkpoint.interval=4'], env, repo_root)
    assert 'FSDP: 7 units over 2 ranks (FULL_SHARD, device cpu)' in log and 'backend=gloo, rank 1 of 2' in log
    ref_losses, ref_weights = reference
    np.testing.assert_allclose(rank_losses(setup / 'fsdp', 2, accumulate=2), ref_losses, rtol=0, atol=1e-5)
    ckpt = setup / 'fsdp' / 'iter_8.pth'
    assert ckpt.is_file()  # one ordinary file, with the unsharded model's keys
    # Written under a temporary name and renamed into place: nothing half-written is left behind.
    assert sorted(p.name for p in (setup / 'fsdp').glob('*.pth*')) == ['iter_4.pth', 'iter_8.pth']
    assert (setup / 'fsdp' / 'last_checkpoint').read_text().strip() == str(ckpt)
    assert_same_weights(weights(ckpt), ref_weights)
    out = setup / 'fsdp_weights.pth'
    run([sys.executable, 'tools/model_converters/fsdp_to_single.py', str(setup / 'tiny_fsdp.py'), str(ckpt),
         str(out)], subprocess_env, repo_root)
    slim = torch.load(out, map_location='cpu', weights_only=True)
    assert sorted(slim) == ['meta', 'state_dict']
    assert_same_weights(slim['state_dict'], weights(ckpt), atol=0)


# Under torchrun, in one pair of processes: resume the FSDP run above from iter_4, train with
# state_dict_cfg='local' (one shard file per rank), and convert those shards to one file with the converter.
DRIVER = textwrap.dedent("""
    import sys

    from mmspectral.apis import build_runner, load_config, register_all_modules

    tmp, root = sys.argv[1:3]
    sys.path.insert(0, f'{root}/tests')
    from cli import run_cli  # noqa: E402
    register_all_modules(init_default_scope=False)


    def train(name, options):
        cfg = load_config(f'{tmp}/tiny_fsdp.py', options)
        cfg.update(work_dir=f'{tmp}/{name}', experiment_name=name, launcher='pytorch')
        build_runner(cfg).train()


    train('resumed', {'resume': True, 'load_from': f'{tmp}/fsdp/iter_4.pth', 'train_dataloader.batch_size': 2,
                      'train_cfg.max_iters': 8, 'optim_wrapper.accumulative_counts': 2})
    train('local', {'strategy.state_dict_cfg': 'local', 'train_dataloader.batch_size': 4})
    run_cli('tools/model_converters/fsdp_to_single.py', [f'{tmp}/tiny_fsdp.py', f'{tmp}/local/iter_4.pth',
                                                         f'{tmp}/local_weights.pth', '--launcher', 'pytorch'])
""")


@pytest.mark.slow
def test_fsdp_resumes_and_local_shards_convert_to_one_file(setup, reference, repo_root, subprocess_env):
    if not (setup / 'fsdp' / 'iter_4.pth').is_file():
        pytest.skip('needs the checkpoints of test_fsdp_two_processes_equal_one_and_write_one_checkpoint')
    (setup / 'driver.py').write_text(DRIVER)
    run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port',
         str(free_ports(1)[0]), str(setup / 'driver.py'), str(setup), repo_root], subprocess_env, repo_root)
    ref_losses, ref_weights = reference
    # The resumed run continues the same run: iterations 5-8 are updates 3 and 4 of the reference.
    resumed = rank_losses(setup / 'resumed', 2, accumulate=2)
    np.testing.assert_allclose(resumed, ref_losses[2:], rtol=0, atol=1e-5)
    assert_same_weights(weights(setup / 'resumed' / 'iter_8.pth'), ref_weights)
    assert sorted(os.listdir(setup / 'local' / 'iter_4.pth')) == ['rank0.pth', 'rank1.pth']
    assert not list((setup / 'local').glob('*.tmp'))  # the shard folder was renamed into place
    converted = torch.load(setup / 'local_weights.pth', map_location='cpu', weights_only=True)
    assert_same_weights(converted['state_dict'], ref_weights)


@pytest.mark.slow
def test_a_stopped_rank_is_named_when_the_collective_times_out(setup, repo_root, subprocess_env, tmp_path):
    """Rank 1 is stopped (SIGSTOP) while training: rank 0 gives up after --dist-timeout plus the heartbeat
    read (3 s) and exits non-zero with a message that names rank 1 and its pid, not after 10 or 30 minutes."""
    timeout = 8  # the rendezvous also waits this long for the other rank to start: not less on a busy CPU
    port = free_ports(1)[0]
    procs, logs = [], [tmp_path / 'rank0.log', tmp_path / 'rank1.log']
    try:
        for rank in (0, 1):
            env = dict(subprocess_env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                       MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
            with open(logs[rank], 'w') as log:
                procs.append(subprocess.Popen(
                    [sys.executable, 'tools/train.py', str(setup / 'tiny.py'), '--launcher', 'pytorch',
                     '--work-dir', str(tmp_path / 'work'), '--dist-timeout', str(timeout), '--cfg-options',
                     'train_dataloader.batch_size=4', 'train_cfg.max_iters=1000000'],
                    cwd=repo_root, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while not re.search(r'Iter\(train\) \[\s*3/', logs[0].read_text()):  # both ranks are stepping
            assert procs[0].poll() is None and time.monotonic() < deadline, logs[0].read_text()[-3000:]
            time.sleep(0.2)
        os.kill(procs[1].pid, signal.SIGSTOP)
        stopped = time.monotonic()
        procs[0].wait(timeout=timeout + 40)
        waited = time.monotonic() - stopped
        out = logs[0].read_text()
        assert procs[0].returncode != 0, out[-3000:]
        host = re.escape(socket.gethostname())
        # the heartbeat publishes a new stage within 0.5 s, so on a loaded machine the stopped rank may still
        # report the start of training
        named = (rf'rank 1 \(pid {procs[1].pid} on host {host}\) is silent: no heartbeat for \d+ s, '
                 r'last at (iteration \d+|the start of training \(iteration \d+\))\.')
        assert re.search(named, out), out[-3000:]
        assert 'CollectiveTimeoutError' in out and 'stopped (SIGSTOP)' in out
        assert timeout <= waited < timeout + 20, waited
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()  # SIGKILL also ends a stopped process
                proc.wait()
