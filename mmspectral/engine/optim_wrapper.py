"""Mixed precision by autocast alone, on CPU and GPU alike."""
from contextlib import contextmanager

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from mmspectral.registry import OPTIM_WRAPPERS

_DTYPES = {'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16, 'float16': torch.float16, 'fp16': torch.float16,
           'float32': None, 'fp32': None}


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Runs the forward pass under ``torch.autocast`` (bf16 by default), with no loss scaling.

    MMEngine's ``AmpOptimWrapper`` needs CUDA and a GradScaler; bf16 needs no scaler and speeds up CPUs with
    AVX512-BF16 / AMX as well as GPUs. For fp16 on GPU use ``AmpOptimWrapper``, whose loss scaling fp16 needs.

    Args:
        dtype: 'bfloat16' (default), 'float16', or 'float32' (autocast off: plain fp32 training, so that a config
            switches precision with this one key).
        **kwargs: as MMEngine's OptimWrapper (optimizer, clip_grad, accumulative_counts).
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f'AutocastOptimWrapper: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}.')
        super().__init__(**kwargs)
        self.cast_dtype = _DTYPES[dtype]
        self._announced = False

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        device_type = next(model.parameters()).device.type
        if self.cast_dtype == torch.float16 and device_type == 'cpu' and not self._announced:
            print_log('AutocastOptimWrapper: float16 autocast on CPU is slow and unscaled; bfloat16 is the CPU '
                      'choice.', logger='current', level=30)
        self._announced = True
        with super().optim_context(model), torch.autocast(device_type=device_type, dtype=self.cast_dtype,
                                                          enabled=self.cast_dtype is not None):
            yield
