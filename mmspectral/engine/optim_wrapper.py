"""Optimizer wrappers that can hold back a non-finite update, and mixed precision by autocast alone."""
from contextlib import contextmanager
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper as MMEngineOptimWrapper

from mmspectral.registry import OPTIM_WRAPPERS
from mmspectral.utils.precision import cpu_precision

__all__ = ['OptimWrapper', 'AutocastOptimWrapper']

_DTYPES = {'auto': 'auto', 'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16, 'float16': torch.float16,
           'fp16': torch.float16, 'float32': None, 'fp32': None}


@OPTIM_WRAPPERS.register_module()
class OptimWrapper(MMEngineOptimWrapper):
    """MMEngine's OptimWrapper, registered under its name, that can hold back a non-finite update.

    Every config's ``type='OptimWrapper'`` (with ``default_scope='mmspectral'``) gets it. Off (the default) it
    updates exactly as MMEngine's. ``NonFiniteLossHook`` switches ``hold_back_nonfinite`` on; then, on every
    rank alike (the decision is all-reduced):

    * a loss that is NaN or infinite is neither back-propagated nor stepped (``held_back = 'loss'``);
    * after ``backward``, before clipping and the optimizer step, gradients whose norm is not finite are
      dropped and the step is not taken (``held_back = 'gradient'``): a finite loss can still give a NaN
      gradient, and with clipping one NaN gradient makes every gradient NaN.

    So no non-finite value reaches the weights, the optimizer state, the EMA or a checkpoint. With gradient
    accumulation a held-back micro-batch adds no gradient, and if it is the last of its group the group's
    update is dropped.
    """

    # Set by NonFiniteLossHook.
    hold_back_nonfinite = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # why the last update_params held its update back: 'loss', 'gradient'
        self.held_back: Optional[str] = None
        self.held_back_steps = 0

    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        self.held_back = None
        if not self.hold_back_nonfinite:
            return super().update_params(loss, step_kwargs, zero_kwargs)
        if not _finite_on_every_rank(loss.detach()):
            self._hold_back('loss')
            # The micro-batch still counts, so that accumulation stays aligned with the iterations.
            self._inner_count += 1
            if self.should_update():
                self.zero_grad(**(zero_kwargs or {}))
            return
        self.backward(self.scale_loss(loss))
        if self.should_update():
            if _finite_on_every_rank(_grad_norm(self.optimizer)):
                self.step(**(step_kwargs or {}))
            else:
                self._hold_back('gradient')
            self.zero_grad(**(zero_kwargs or {}))

    def _hold_back(self, why: str) -> None:
        self.held_back = why
        self.held_back_steps += 1


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Runs the forward pass under ``torch.autocast`` (bf16 where it is fast), with no loss scaling.

    MMEngine's ``AmpOptimWrapper`` needs CUDA and a GradScaler; bf16 needs no scaler and speeds up CPUs with
    AVX512-BF16 / AMX as well as GPUs. For fp16 on GPU use ``AmpOptimWrapper``, whose loss scaling fp16 needs.
    Non-finite updates are held back as by :class:`OptimWrapper` when ``NonFiniteLossHook`` asks.

    Args:
        dtype: 'auto' (default: bf16 on a GPU and on a CPU with native bf16; fp32, with one log line, on a
            CPU without, where bf16 is emulated about 100x slower), 'bfloat16' (also on such a CPU, with a
            warning), 'float16', or 'float32' (autocast off: plain fp32 training, so that a config switches
            precision with this one key).
        **kwargs: as MMEngine's OptimWrapper (optimizer, clip_grad, accumulative_counts).
    """

    def __init__(self, dtype: str = 'auto', **kwargs) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f'AutocastOptimWrapper: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}.')
        super().__init__(**kwargs)
        self.requested = _DTYPES[dtype]
        self.cast_dtype = None  # what runs: decided on the first step, where the device is known
        self._resolved = False

    def resolve(self, device_type: str):
        """The autocast dtype on ``device_type``: 'auto' is bf16 unless the CPU has no native bf16
        (:func:`~mmspectral.utils.precision.cpu_precision`); an explicit request is kept."""
        explicit = self.requested != 'auto'
        wanted = torch.bfloat16 if not explicit else self.requested
        return cpu_precision(wanted, explicit=explicit, where='AutocastOptimWrapper',
                             device_type=device_type)

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        device_type = next(model.parameters()).device.type
        if not self._resolved:
            self.cast_dtype = self.resolve(device_type)
            if self.cast_dtype == torch.float16 and device_type == 'cpu':
                print_log('AutocastOptimWrapper: float16 autocast on CPU is slow and unscaled; bfloat16 is '
                          'the CPU choice.', logger='current', level=30)
            self._resolved = True
        with super().optim_context(model), torch.autocast(device_type=device_type,
                                                          dtype=self.cast_dtype or torch.float32,
                                                          enabled=self.cast_dtype is not None):
            yield


def _grad_norm(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """The total 2-norm of this rank's gradients (its shard, under FSDP); 0 when there are none."""
    grads = [p.grad for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0, error_if_nonfinite=False)


def _finite_on_every_rank(value: torch.Tensor) -> bool:
    bad = (~torch.isfinite(value.detach())).any().float().reshape(1)
    if get_world_size() > 1:  # all ranks must agree, or the ones that step would wait for the others forever
        all_reduce(bad, op='sum')
    return bool(bad.item() == 0)
