"""``NonFiniteLossHook``: stop a run, or skip the step, when a loss turns NaN or infinite."""
import math
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict

from mmspectral.registry import HOOKS
from ..optim_wrapper import AutocastOptimWrapper
from ..resume import find_latest_checkpoint

__all__ = ['NonFiniteLossHook', 'NonFiniteLossError']


class NonFiniteLossError(FloatingPointError):
    """A training loss was NaN or infinite: the message names the iteration, terms and last checkpoint."""


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


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Checks every loss term after each training iteration, before anything saves or averages the weights.

    Runs at priority VERY_HIGH: its ``after_train_iter`` comes before EMAHook's and CheckpointHook's, so a
    non-finite step never reaches the EMA weights nor a checkpoint. The terms checked are the outputs of
    ``train_step`` whose names contain ``loss`` (``loss``, ``loss_*``, ``disc_loss``, ...).

    Updates are held back before ``backward`` by the optimizer wrappers that can (``AutocastOptimWrapper``,
    any ``dtype``; ``AmpOptimWrapper``, whose GradScaler skips steps with non-finite gradients): this hook
    switches that on in ``before_train``.

    Args:
        action: 'raise' (default): stop with :class:`NonFiniteLossError`, naming the iteration (1-based, as
            the log and ``iter_N.pth``), the non-finite terms and the newest complete checkpoint in the work
            dir. With a wrapper that holds back, the weights in memory are still finite; with MMEngine's
            plain OptimWrapper the step has happened, but nothing after it (EMA, checkpoint) has.
            'skip': hold the update back and go on, logging each skipped step and counting them in the message
            hub (``nonfinite_skipped``, saved in checkpoints). Needs optimizer wrappers that hold back.
        max_skips: with 'skip', raise once more than this many steps were skipped in the whole run
            (None: no limit). A run that keeps producing NaN is broken, not unlucky.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'raise', max_skips: Optional[int] = None) -> None:
        if action not in ('raise', 'skip'):
            raise ValueError(f"NonFiniteLossHook: action must be 'raise' or 'skip', got {action!r}.")
        self.action = action
        self.max_skips = max_skips
        self.skipped = 0

    @staticmethod
    def _wrappers(runner) -> Dict[str, OptimWrapper]:
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, OptimWrapperDict):
            return dict(wrapper.items())
        return {'optim_wrapper': wrapper} if isinstance(wrapper, OptimWrapper) else {}

    def before_train(self, runner) -> None:
        self.skipped = runner.message_hub.get_info('nonfinite_skipped', 0)
        unable = []
        for name, wrapper in self._wrappers(runner).items():
            if isinstance(wrapper, AutocastOptimWrapper):
                wrapper.hold_back_nonfinite = True
            elif not isinstance(wrapper, AmpOptimWrapper):
                unable.append(f'{name} ({type(wrapper).__name__})')
        if unable and self.action == 'skip':
            raise ValueError(
                f"NonFiniteLossHook(action='skip') needs optimizer wrappers that hold back an update before "
                f"it happens, but {', '.join(unable)} cannot. Use type='AutocastOptimWrapper' "
                "(dtype='float32' for plain fp32 training) in optim_wrapper, or action='raise'.")

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        for wrapper in self._wrappers(runner).values():
            if isinstance(wrapper, AutocastOptimWrapper):
                wrapper.held_back = False  # a wrapper not stepped in this iteration held nothing back

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        outputs = outputs or {}
        bad = [key for key, value in outputs.items() if 'loss' in key and not _is_finite(value)]
        anywhere = len(bad)
        if get_world_size() > 1:  # every rank must take the same decision
            count = torch.tensor([float(anywhere)])
            all_reduce(count, op='sum')
            anywhere = int(count.item())
        if not anywhere:
            return
        iteration = runner.iter + 1
        terms = ', '.join(f'{key}={_show(outputs[key])}' for key in bad) if bad else 'on another rank'
        wrappers = self._wrappers(runner)
        held = [name for name, w in wrappers.items() if getattr(w, 'held_back', False)]
        if self.action == 'skip':
            if not held and not any(isinstance(w, AmpOptimWrapper) for w in wrappers.values()):
                self._raise(runner, iteration, terms, 'The update could not be held back (train_step did not '
                            'go through update_params of the optimizer wrapper), so the weights may not be '
                            'finite.')
            self.skipped += 1
            runner.message_hub.update_info('nonfinite_skipped', self.skipped)
            runner.logger.warning(f'Iteration {iteration}: non-finite loss ({terms}); its update was '
                                  f'skipped ({self.skipped} skipped so far).')
            if self.max_skips is not None and self.skipped > self.max_skips:
                self._raise(runner, iteration, terms, f'That is {self.skipped} skipped steps, more than '
                            f'max_skips={self.max_skips}.')
            return
        if held:
            done = f'Its update was held back ({", ".join(held)}): the weights in memory are finite.'
        else:
            done = ('The optimizer step had already run (the optimizer wrapper does not hold back updates), '
                    'but no checkpoint or EMA update followed it.')
        self._raise(runner, iteration, terms, done)

    def after_train(self, runner) -> None:
        if self.skipped:
            runner.logger.warning(f'NonFiniteLossHook: {self.skipped} training steps were skipped for a '
                                  'non-finite loss.')

    @staticmethod
    def _raise(runner, iteration: int, terms: str, what_happened: str) -> None:
        last = find_latest_checkpoint(runner.work_dir)
        where = (f'The newest complete checkpoint is {last}; resume from it with --resume (auto), perhaps '
                 'with a lower learning rate or gradient clipping.' if last else
                 'No checkpoint has been saved in the work dir yet.')
        raise NonFiniteLossError(f'Non-finite training loss at iteration {iteration}: {terms}. '
                                 f'{what_happened} {where} To skip such steps instead, set '
                                 'default_hooks.nonfinite_loss = '
                                 "dict(type='NonFiniteLossHook', action='skip').")
