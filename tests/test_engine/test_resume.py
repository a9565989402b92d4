"""Runs that survive: atomic checkpoints, exact resume, non-finite losses (docs/reliability.md).

Real MMEngine runs of a tiny model whose loss draws from every global RNG (dropout, python, numpy; the data
pipeline flips with numpy), with EMA, a learning-rate schedule, a shuffled InfiniteSampler and validation.
"""
import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.fileio import LocalBackend
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.optim import OptimWrapper as MMEngineOptimWrapper

from mmspectral.apis import build_runner, load_config
from mmspectral.engine import (NonFiniteLossError, atomic_write_path, checkpoint_defect,
                               find_latest_checkpoint, load_torch_file)
from mmspectral.registry import MODELS, OPTIM_WRAPPERS

CONFIG = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data', 'tiny_autoencoder_config.py')


@MODELS.register_module(force=True)
class ResumeProbeNet(BaseModel):
    """Conv net with dropout whose loss also draws from python's and numpy's RNGs; NaN at given iterations."""

    def __init__(self, width: int = 8, nan_at=(), data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.nan_at = set(nan_at)
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GELU(), nn.Dropout(0.3),
                                 nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.net(inputs)
        if mode == 'loss':
            loss = F.mse_loss(out, inputs) * (1 + 0.1 * random.random() + 0.1 * float(np.random.rand()))
            if MessageHub.get_current_instance().get_info('iter') + 1 in self.nan_at:
                loss = loss * float('nan')
            return dict(loss_rec=loss, loss_reg=1e-3 * out.abs().mean())
        if mode == 'predict':
            return [o for o in out]
        return out


class Killed(BaseException):
    """Stands for the process being killed: nothing catches it."""


class Recorder(Hook):
    """Records the loss of every iteration; optionally 'kills' the run after one iteration."""

    def __init__(self, kill_after=None):
        self.losses, self.kill_after = {}, kill_after

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses[runner.iter + 1] = float(outputs['loss'].detach())
        if runner.iter + 1 == self.kill_after:
            raise Killed


def make_runner(work_dir, name, max_iters=6, interval=3, nan_at=(), val=False, **overrides):
    cfg = load_config(CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'resume-{name}-{os.path.basename(os.path.dirname(work_dir))}'
    cfg.model = dict(type='ResumeProbeNet', nan_at=list(nan_at),
                     data_preprocessor=dict(type='ImageDataPreprocessor'))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0, end=max_iters)]
    cfg.custom_hooks = [dict(type='EMAHook', momentum=0.2, priority='ABOVE_NORMAL')]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=interval,
                                        max_keep_ckpts=3, save_last=True)
    if val:
        cfg.val_dataloader = dict(
            batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='EmbeddedShapesDataset', num_samples=8, seed=1, test_mode=True,
                         pipeline=[dict(type='PackImageInputs')]))
        cfg.val_cfg = dict(type='ValLoop')
        cfg.val_evaluator = dict(type='TinyMeanMetric')
    cfg.merge_from_dict(overrides)
    return build_runner(cfg)


def train(runner, kill_after=None, killed=False):
    recorder = Recorder(kill_after)
    runner.register_hook(recorder, priority='LOWEST')
    if kill_after is None and not killed:
        runner.train()
    else:
        with pytest.raises(Killed):
            runner.train()
    return recorder.losses


def assert_same_tensors(a, b, what):
    assert a.keys() == b.keys(), what
    for key in a:
        assert torch.equal(a[key], b[key]), f'{what}: {key} differs'


@pytest.mark.parametrize('runner_type', ['SpectralRunner', 'SpectralFlexibleRunner'])
def test_resumed_run_continues_the_same_run(tmp_path, runner_type):
    kind = dict(runner_type=runner_type)
    full = train(make_runner(tmp_path / 'full', 'full', val=True, **kind))
    # killed after iter_3.pth
    cut = train(make_runner(tmp_path / 'cut', 'cut', val=True, **kind), kill_after=5)
    assert cut == {i: full[i] for i in range(1, 6)}
    assert find_latest_checkpoint(str(tmp_path / 'cut')).endswith('iter_3.pth')

    runner = make_runner(tmp_path / 'cut', 'resumed', val=True, resume=True, **kind)
    resumed = train(runner)
    assert runner.iter == 6
    assert resumed == {i: full[i] for i in (4, 5, 6)}  # bit for bit: data order, dropout, every RNG, schedule

    a = load_torch_file(str(tmp_path / 'full' / 'iter_6.pth'))
    b = load_torch_file(str(tmp_path / 'cut' / 'iter_6.pth'))
    assert_same_tensors(a['state_dict'], b['state_dict'], 'EMA weights (state_dict)')
    assert_same_tensors(a['ema_state_dict'], b['ema_state_dict'], 'training weights (ema_state_dict)')
    for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        assert_same_tensors(sa, sb, 'optimizer state')
    assert a['param_schedulers'] == b['param_schedulers']


def test_kill_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    keep_one = {'default_hooks.checkpoint.max_keep_ckpts': 1}
    runner = make_runner(tmp_path, 'killed-saving', interval=2, max_iters=6, **keep_one)
    put = LocalBackend.put

    def dies_halfway(self, obj, filepath):
        if 'iter_4' in str(filepath):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise Killed
        put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', dies_halfway)
    train(runner, killed=True)
    monkeypatch.setattr(LocalBackend, 'put', put)
    # max_keep_ckpts=1: MMEngine's order would have removed iter_2.pth before writing iter_4.pth.
    names = [n for n in os.listdir(tmp_path) if n.endswith('.pth') or n.endswith('.tmp')]
    assert names == ['iter_2.pth']
    with open(tmp_path / 'last_checkpoint') as f:
        assert f.read().endswith('iter_2.pth')
    assert checkpoint_defect(str(tmp_path / 'iter_2.pth')) is None

    # A SIGKILL leaves the temporary file behind (an exception removes it, as above); auto-resume clears it.
    with open(tmp_path / 'iter_4.pth.tmp', 'wb') as f:
        f.write(b'PK\x03\x04 torn')
    runner = make_runner(tmp_path, 'killed-saving-resumed', interval=2, max_iters=6, resume=True, **keep_one)
    losses = train(runner)
    assert sorted(losses) == [3, 4, 5, 6] and runner.iter == 6
    assert not os.path.exists(tmp_path / 'iter_4.pth.tmp')
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth')) == ['iter_6.pth']


def test_auto_resume_skips_a_torn_newest_checkpoint(tmp_path, monkeypatch):
    train(make_runner(tmp_path, 'torn', interval=2, max_iters=4))
    newest = str(tmp_path / 'iter_4.pth')
    with open(newest, 'rb') as f:
        data = f.read()
    with open(newest, 'wb') as f:  # as a copy or a writer without the rename would leave it
        f.write(data[:len(data) // 3])
    assert 'written only in part' in checkpoint_defect(newest)

    warnings = []
    monkeypatch.setattr('mmspectral.engine.resume.print_log', lambda msg, **kw: warnings.append(msg))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')
    assert len(warnings) == 1 and newest in warnings[0]

    runner = make_runner(tmp_path, 'torn-resumed', interval=2, max_iters=5, resume=True)
    assert sorted(train(runner)) == [3, 4, 5]


def test_checkpoint_defect_and_atomic_write(tmp_path):
    path = str(tmp_path / 'x.pth')
    torch.save({'w': torch.randn(64)}, path)
    assert checkpoint_defect(path) is None
    with pytest.raises(RuntimeError):
        with atomic_write_path(path) as tmp:
            with open(tmp, 'wb') as f:
                f.write(b'half')
            raise RuntimeError('disk full')
    assert sorted(os.listdir(tmp_path)) == ['x.pth'] and checkpoint_defect(path) is None
    open(tmp_path / 'empty.pth', 'wb').close()
    assert checkpoint_defect(str(tmp_path / 'empty.pth')) == 'the file is empty'
    with open(tmp_path / 'short.pth', 'wb') as f:
        f.write(b'PK')  # killed right after the first bytes
    assert 'written only in part' in checkpoint_defect(str(tmp_path / 'short.pth'))
    legacy = str(tmp_path / 'legacy.pth')
    torch.save({'w': torch.randn(4)}, legacy, _use_new_zipfile_serialization=False)
    assert checkpoint_defect(legacy) is None  # not a zip archive: nothing to check cheaply


def test_nonfinite_loss_stops_before_the_checkpoint(tmp_path):
    runner = make_runner(tmp_path, 'nan-raise', interval=2, max_iters=6, nan_at=[4])
    with pytest.raises(NonFiniteLossError) as err:
        train(runner)
    msg = str(err.value)
    assert 'iteration 4' in msg and 'loss_rec=nan' in msg and 'loss_reg' not in msg
    assert str(tmp_path / 'iter_2.pth') in msg
    # CheckpointHook of iteration 4 never ran: the newest checkpoint is the good one, and finite.
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')
    assert not os.path.exists(tmp_path / 'iter_4.pth')
    ckpt = load_torch_file(str(tmp_path / 'iter_2.pth'))
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values())


class WeightWatcher(Hook):
    """Whether each iteration changed the training weights."""

    def __init__(self):
        self.changed = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._before = [p.detach().clone() for p in runner.model.parameters()]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        after = list(runner.model.parameters())
        self.changed[runner.iter + 1] = any(not torch.equal(a, b) for a, b in zip(self._before, after))


def test_nonfinite_loss_skip_holds_the_update_back(tmp_path):
    skip = {'default_hooks.nonfinite_loss.action': 'skip'}
    with pytest.raises(ValueError, match='AutocastOptimWrapper'):  # a wrapper that cannot hold back
        make_runner(tmp_path / 'plain', 'nan-skip-plain', nan_at=[2], **skip,
                    optim_wrapper=dict(type='UnguardedTestWrapper',
                                       optimizer=dict(type='AdamW', lr=1e-3))).train()

    runner = make_runner(tmp_path / 'a', 'nan-skip', interval=3, max_iters=6, nan_at=[2, 5],
                         optim_wrapper=dict(type='AutocastOptimWrapper', dtype='float32'), **skip)
    watcher = WeightWatcher()
    runner.register_hook(watcher, priority='HIGHEST')
    losses = train(runner)
    assert runner.iter == 6 and np.isnan(losses[2]) and np.isnan(losses[5])
    assert watcher.changed == {1: True, 2: False, 3: True, 4: True, 5: False, 6: True}
    assert runner.message_hub.get_info('nonfinite_skipped') == 2
    ckpt = load_torch_file(str(tmp_path / 'a' / 'iter_6.pth'))
    assert ckpt['message_hub']['runtime_info']['nonfinite_skipped'] == 2
    for key in ('state_dict', 'ema_state_dict'):
        assert all(torch.isfinite(v).all() for v in ckpt[key].values())


class NanGradient(Hook):
    """Makes the gradient of the first weight NaN at the given iterations: a finite loss, a NaN gradient."""

    def __init__(self, at):
        self.at, self._handle = set(at), None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 in self.at:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            self._handle = next(model.parameters()).register_hook(lambda grad: grad * float('nan'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def all_finite(tensors):
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def ema_weights(runner):
    ema = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook')
    return list(ema.ema_model.parameters())


CLIPPED = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3), clip_grad=dict(max_norm=1.0))


def test_nan_gradient_stops_before_it_reaches_weights_ema_or_checkpoint(tmp_path):
    """A finite loss with a NaN gradient at a checkpoint iteration, with clipping (which spreads the NaN)."""
    runner = make_runner(tmp_path, 'nangrad-raise', interval=2, max_iters=6, optim_wrapper=CLIPPED)
    runner.register_hook(NanGradient([4]), priority='HIGHEST')
    with pytest.raises(NonFiniteLossError) as err:
        train(runner)
    msg = str(err.value)
    assert ('iteration 4' in msg and 'non-finite gradient norm' in msg
            and 'weights in memory are finite' in msg)
    assert str(tmp_path / 'iter_2.pth') in msg and "action='skip'" in msg
    assert all_finite(runner.model.parameters()) and all_finite(ema_weights(runner))
    assert not os.path.exists(tmp_path / 'iter_4.pth')
    ckpt = load_torch_file(str(tmp_path / 'iter_2.pth'))
    assert all_finite(ckpt['state_dict'].values()) and all_finite(ckpt['ema_state_dict'].values())


@pytest.mark.parametrize('wrapper', [CLIPPED, dict(type='AutocastOptimWrapper', dtype='float32')])
def test_nan_gradient_skip_holds_the_update_back_and_keeps_finite_checkpoints(tmp_path, wrapper):
    skip = {'default_hooks.nonfinite_loss.action': 'skip', 'default_hooks.checkpoint.max_keep_ckpts': 1}
    runner = make_runner(tmp_path, f'nangrad-skip-{wrapper["type"]}', interval=2, max_iters=6,
                         optim_wrapper=wrapper, **skip)
    watcher = WeightWatcher()
    runner.register_hook(watcher, priority='HIGHEST')
    runner.register_hook(NanGradient([2, 4]), priority='HIGHEST')
    train(runner)
    assert runner.iter == 6 and watcher.changed == {1: True, 2: False, 3: True, 4: False, 5: True, 6: True}
    assert runner.message_hub.get_info('nonfinite_skipped') == 2
    ckpt = load_torch_file(str(tmp_path / 'iter_6.pth'))
    assert all_finite(ckpt['state_dict'].values()) and all_finite(ckpt['ema_state_dict'].values())
    # max_skips: the message does not suggest the mode the run is already in
    runner = make_runner(tmp_path / 'few', 'nangrad-max', interval=2, max_iters=6, optim_wrapper=wrapper,
                         **{'default_hooks.nonfinite_loss.max_skips': 0}, **skip)
    runner.register_hook(NanGradient([3]), priority='HIGHEST')
    with pytest.raises(NonFiniteLossError) as err:
        train(runner)
    msg = str(err.value)
    assert 'more than max_skips=0' in msg and "action='skip'" not in msg
    assert str(tmp_path / 'few' / 'iter_2.pth') in msg


@OPTIM_WRAPPERS.register_module(force=True)
class UnguardedTestWrapper(MMEngineOptimWrapper):
    """A wrapper that cannot hold an update back (as a user's own might be)."""


def test_without_a_guarding_wrapper_no_nonfinite_state_is_saved(tmp_path):
    """The hook then checks the weights after each step; and the checkpoint hook refuses non-finite weights
    even without it, keeping the older checkpoint whatever max_keep_ckpts says."""
    unguarded = dict(type='UnguardedTestWrapper', optimizer=dict(type='AdamW', lr=1e-3),
                     clip_grad=dict(max_norm=1))
    runner = make_runner(tmp_path / 'hook', 'unguarded', interval=2, max_iters=6, optim_wrapper=unguarded)
    runner.register_hook(NanGradient([4]), priority='HIGHEST')
    with pytest.raises(NonFiniteLossError, match=r'iteration 4: non-finite weights after the step'):
        train(runner)
    assert not os.path.exists(tmp_path / 'hook' / 'iter_4.pth')
    assert all_finite(ema_weights(runner))  # the EMA never averaged them
    runner = make_runner(tmp_path / 'ckpt', 'unguarded-nohook', interval=2, max_iters=6,
                         optim_wrapper=unguarded,
                         **{'default_hooks.nonfinite_loss': None,
                            'default_hooks.checkpoint.max_keep_ckpts': 1})
    runner.register_hook(NanGradient([3]), priority='HIGHEST')
    with pytest.raises(NonFiniteLossError) as err:
        train(runner)
    assert 'checkpoint of iteration 4 was not written' in str(err.value)
    assert str(tmp_path / 'ckpt' / 'iter_2.pth') in str(err.value)
    assert sorted(os.listdir(tmp_path / 'ckpt')).count('iter_2.pth') == 1
    assert all_finite(load_torch_file(str(tmp_path / 'ckpt' / 'iter_2.pth'))['state_dict'].values())


def test_a_save_that_fails_keeps_the_iterations_done(tmp_path):
    """A key the checks would catch, passed with skip_checks: the save fails, the plain save keeps the run."""
    runner = make_runner(tmp_path, 'save-fails', interval=2, max_iters=4,
                         **{'default_hooks.checkpoint.intervl': 2, 'skip_checks': True})
    with pytest.raises(RuntimeError) as err:
        train(runner)
    msg = str(err.value)
    saved = str(tmp_path / 'iter_2.pth')
    assert 'Saving the checkpoint iter_2.pth' in msg and 'GiB free' in msg
    assert f'The iterations done are saved in {saved}' in msg and f'--resume {saved}' in msg
    assert load_torch_file(saved)['meta']['iter'] == 2
