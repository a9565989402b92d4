"""``NonFiniteLossHook``: stop a run, or skip the step, when a loss or a gradient turns NaN or infinite."""
import math
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper
from mmengine.optim import OptimWrapper as MMEngineOptimWrapper
from mmengine.optim import OptimWrapperDict

from mmspectral.registry import HOOKS
from ..optim_wrapper import OptimWrapper
from ..resume import find_latest_checkpoint

__all__ = ['NonFiniteLossHook', 'NonFiniteLossError', 'nonfinite_tensors', 'latest_checkpoint_sentence']


class NonFiniteLossError(FloatingPointError):
    """A training loss, gradient or weight was NaN or infinite: the message names the iteration, what was not
    finite, and the newest checkpoint (which is finite: no non-finite state is ever saved)."""


def _show(value) -> str:
    if torch.is_tensor(value):
        value = value.detach().float()
        return f'{value.item():g}' if value.numel() == 1 else str(value.tolist())
    return f'{value:g}' if isinstance(value, (int, float)) else repr(value)


def _is_finite(value) -> bool:
    if torch.is_tensor(value):
        return bool(torch.isfinite(value.detach()).all())
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return True


def nonfinite_tensors(named) -> List[str]:
    """The names of the floating-point tensors in ``named`` ((name, tensor) pairs) holding NaN or inf.

    A sharded tensor (an FSDP ``'local'`` state dict) is judged by this rank's shards.
    """
    bad = []
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            continue
        if hasattr(t, 'local_shards'):  # ShardedTensor
            parts = [shard.tensor for shard in t.local_shards()]
        elif hasattr(t, 'to_local'):  # DTensor
            parts = [t.to_local()]
        else:
            parts = [t]
        if any(p.is_floating_point() and not bool(torch.isfinite(p).all()) for p in parts):
            bad.append(name)
    return bad


def latest_checkpoint_sentence(work_dir: str) -> str:
    last = find_latest_checkpoint(work_dir)
    return (f'The newest complete checkpoint is {last} (its weights are finite: mmspectral never saves a '
            'non-finite state); resume from it with --resume (auto), perhaps with a lower learning rate or '
            'gradient clipping.' if last else 'No checkpoint has been saved in the work dir yet.')


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Checks every step for a non-finite loss or gradient, before anything saves or averages the weights.

    Runs at priority VERY_HIGH: its ``after_train_iter`` comes before EMAHook's and CheckpointHook's, so a
    non-finite step never reaches the EMA weights nor a checkpoint. The loss terms checked are the outputs of
    ``train_step`` whose names contain ``loss`` (``loss``, ``loss_*``, ``disc_loss``, ...); the gradients are
    checked by mmspectral's optimizer wrappers (``OptimWrapper``, ``AutocastOptimWrapper``), which this hook
    asks in ``before_train`` to hold back a step whose loss or gradient norm is not finite, before it reaches
    the weights (a finite loss can have a NaN gradient). With another wrapper (a user's own; MMEngine's
    ``AmpOptimWrapper`` skips such steps itself) the hook checks the weights after every step instead.

    Args:
        action: 'raise' (default): stop with :class:`NonFiniteLossError`, naming the iteration (1-based, as
            the log and ``iter_N.pth``), what was not finite and the newest complete checkpoint in the work
            dir. The weights in memory are still finite (the update was held back). 'skip': hold the update
            back and go on, logging each skipped step and counting them in the message hub
            (``nonfinite_skipped``, saved in checkpoints). Needs optimizer wrappers that hold back.
        max_skips: with 'skip', raise once more than this many steps were skipped in the whole run
            (None: no limit). A run that keeps producing NaN is broken, not unlucky.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'raise', max_skips: Optional[int] = None) -> None:
        if action not in ('raise', 'skip'):
            raise ValueError(f"NonFiniteLossHook: action must be 'raise' or 'skip', got {action!r}.")
        if max_skips is not None and (not isinstance(max_skips, int) or max_skips < 0):
            raise ValueError(
                f'NonFiniteLossHook: max_skips must be None or an integer >= 0, got {max_skips!r}.')
        self.action = action
        self.max_skips = max_skips
        self.skipped = 0
        self._unguarded: List[str] = []

    @staticmethod
    def _wrappers(runner) -> Dict[str, MMEngineOptimWrapper]:
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, OptimWrapperDict):
            return dict(wrapper.items())
        return {'optim_wrapper': wrapper} if isinstance(wrapper, MMEngineOptimWrapper) else {}

    def before_train(self, runner) -> None:
        self.skipped = runner.message_hub.get_info('nonfinite_skipped', 0)
        self._unguarded = []
        for name, wrapper in self._wrappers(runner).items():
            if isinstance(wrapper, OptimWrapper):
                wrapper.hold_back_nonfinite = True
            elif not isinstance(wrapper, AmpOptimWrapper):
                self._unguarded.append(f'{name} ({type(wrapper).__name__})')
        if self._unguarded and self.action == 'skip':
            raise ValueError(
                f"NonFiniteLossHook(action='skip') needs optimizer wrappers that hold back an update before "
                f"it happens, but {', '.join(self._unguarded)} cannot. Use mmspectral's type='OptimWrapper' "
                "or type='AutocastOptimWrapper' in optim_wrapper, or action='raise'.")
        if self._unguarded:
            runner.logger.warning(
                f'NonFiniteLossHook: {", ".join(self._unguarded)} cannot hold back a non-finite update, so '
                'the weights are checked after every step instead (a read of every parameter per iteration). '
                "mmspectral's OptimWrapper / AutocastOptimWrapper check the gradient norm before the step.")

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        outputs = outputs or {}
        bad = [key for key, value in outputs.items() if 'loss' in key and not _is_finite(value)]
        wrappers = self._wrappers(runner)
        bad_grads = [name for name, w in wrappers.items() if getattr(w, 'held_back', None) == 'gradient']
        bad_weights = []
        if self._unguarded:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            bad_weights = nonfinite_tensors(model.named_parameters())
        anywhere = len(bad) + len(bad_grads) + len(bad_weights)
        if get_world_size() > 1:  # every rank must take the same decision
            count = torch.tensor([float(anywhere)])
            all_reduce(count, op='sum')
            anywhere = int(count.item())
        if not anywhere:
            return
        iteration = runner.iter + 1
        parts = []
        if bad:
            parts.append('non-finite loss ('
                         + ', '.join(f'{key}={_show(outputs[key])}' for key in bad) + ')')
        if bad_grads:
            parts.append(f'non-finite gradient norm ({", ".join(bad_grads)}) with a finite loss')
        if bad_weights:
            parts.append(f'non-finite weights after the step ({len(bad_weights)} tensors, '
                         f'e.g. {bad_weights[0]})')
        what = '; '.join(parts) or 'non-finite loss or gradient on another rank'
        held = [name for name, w in wrappers.items() if getattr(w, 'held_back', None)]
        if bad_weights:
            self._raise(runner, iteration, what, 'The optimizer wrapper could not hold the update back, so '
                        'the weights in memory are not finite; nothing after the step '
                        '(EMA, checkpoint) saw them.')
        if self.action == 'skip':
            if not held and not any(isinstance(w, AmpOptimWrapper) for w in wrappers.values()):
                self._raise(runner, iteration, what, 'The update could not be held back (train_step did not '
                            'go through update_params of the optimizer wrapper), so the weights may not be '
                            'finite.')
            self.skipped += 1
            runner.message_hub.update_info('nonfinite_skipped', self.skipped)
            runner.logger.warning(f'Iteration {iteration}: {what}; its update was skipped ({self.skipped} '
                                  'skipped so far).')
            if self.max_skips is not None and self.skipped > self.max_skips:
                self._raise(runner, iteration, what, f'That is {self.skipped} skipped steps, more than '
                            f'max_skips={self.max_skips}: a run that keeps producing NaN is broken. The '
                            'weights in memory are finite.')
            return
        self._raise(runner, iteration, what, f'Its update was held back ({", ".join(held) or "by AMP"}): the '
                    'weights in memory are finite.')

    def after_train(self, runner) -> None:
        if self.skipped:
            runner.logger.warning(f'NonFiniteLossHook: {self.skipped} training steps were skipped for a '
                                  'non-finite loss or gradient.')

    def _raise(self, runner, iteration: int, what: str, what_happened: str) -> None:
        hint = ('' if self.action == 'skip' else
                " To skip such steps instead, set default_hooks.nonfinite_loss = "
                "dict(type='NonFiniteLossHook', action='skip').")
        raise NonFiniteLossError(f'Non-finite training step at iteration {iteration}: {what}. '
                                 f'{what_happened} {latest_checkpoint_sentence(runner.work_dir)}{hint}')
