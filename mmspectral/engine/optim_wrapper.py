"""Mixed precision by autocast alone, on CPU and GPU alike; updates held back when the loss is not finite."""
from contextlib import contextmanager
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from mmspectral.registry import OPTIM_WRAPPERS

_DTYPES = {'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16, 'float16': torch.float16,
           'fp16': torch.float16, 'float32': None, 'fp32': None}


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Runs the forward pass under ``torch.autocast`` (bf16 by default), with no loss scaling.

    MMEngine's ``AmpOptimWrapper`` needs CUDA and a GradScaler; bf16 needs no scaler and speeds up CPUs with
    AVX512-BF16 / AMX as well as GPUs. For fp16 on GPU use ``AmpOptimWrapper``, whose loss scaling fp16 needs.

    It can also hold back the update of a step whose loss is NaN or infinite, which ``NonFiniteLossHook``
    (``action='skip'``, or ``'raise'`` so that the weights it stops with are finite) switches on by setting
    ``hold_back_nonfinite``: see :meth:`update_params`.

    Args:
        dtype: 'bfloat16' (default), 'float16', or 'float32' (autocast off: plain fp32 training, so that a
            config switches precision with this one key).
        **kwargs: as MMEngine's OptimWrapper (optimizer, clip_grad, accumulative_counts).
    """

    # Set by NonFiniteLossHook; off, this wrapper updates exactly as MMEngine's OptimWrapper.
    hold_back_nonfinite = False

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f'AutocastOptimWrapper: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}.')
        super().__init__(**kwargs)
        self.cast_dtype = _DTYPES[dtype]
        self._announced = False
        self.held_back = False  # whether the last update_params held its update back
        self.held_back_steps = 0

    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """As MMEngine's; with ``hold_back_nonfinite``, a loss that is NaN or infinite on any rank is neither
        back-propagated nor stepped, on every rank, and ``held_back`` is set.

        The check comes before ``backward``, so no non-finite gradient reaches the weights or the optimizer
        state. With gradient accumulation a held-back micro-batch adds no gradient, and if it is the last of
        its group the group's update is dropped (its gradients were never synchronised across ranks).
        """
        self.held_back = False
        if self.hold_back_nonfinite and not _finite_on_every_rank(loss):
            self.held_back = True
            self.held_back_steps += 1
            # The micro-batch still counts, so that accumulation stays aligned with the iterations.
            self._inner_count += 1
            if self.should_update():
                self.zero_grad(**(zero_kwargs or {}))
            return
        super().update_params(loss, step_kwargs, zero_kwargs)

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        device_type = next(model.parameters()).device.type
        if self.cast_dtype == torch.float16 and device_type == 'cpu' and not self._announced:
            print_log('AutocastOptimWrapper: float16 autocast on CPU is slow and unscaled; bfloat16 is the '
                      'CPU choice.', logger='current', level=30)
        self._announced = True
        with super().optim_context(model), torch.autocast(device_type=device_type, dtype=self.cast_dtype,
                                                          enabled=self.cast_dtype is not None):
            yield


def _finite_on_every_rank(loss: torch.Tensor) -> bool:
    bad = (~torch.isfinite(loss.detach())).any().float().reshape(1)
    if get_world_size() > 1:  # all ranks must agree, or the ones that step would wait for the others forever
        all_reduce(bad, op='sum')
    return bool(bad.item() == 0)
