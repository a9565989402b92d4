"""Reduced precision on the CPU without a silent slow path.

A CPU runs bf16 matrix products fast only with native bf16 units (AVX512-BF16 or AMX, which oneDNN reports);
elsewhere oneDNN emulates them: on an AVX2-only AMD EPYC a 512 x 512 bf16 matmul ran at about 1 GFLOP/s
against about 100 in fp32. Every place that picks a reduced precision asks :func:`cpu_precision`:

- an automatic choice (a config's ``dtype='auto'``, the default) falls back to fp32 there, with one log line;
- an explicit request (``dtype='bfloat16'``, ``--bf16``) is honoured, with one warning that says how much
  slower it will be.

``MMSPECTRAL_CPU_BF16=0`` makes a CPU count as having no native bf16 (and ``=1`` as having it), to try the
fallback on any machine.
"""
import os
import warnings
from typing import Optional

import torch

__all__ = ['onednn_bf16', 'cpu_bf16_native', 'cpu_precision', 'EMULATED_BF16_SLOWDOWN',
           'SlowPrecisionWarning']

#: what an emulated bf16 matmul costs against fp32 (AVX2-only AMD EPYC: ~1 against ~100 GFLOP/s)
EMULATED_BF16_SLOWDOWN = 'about 100x slower matrix products than fp32 (measured on an AVX2-only CPU)'
_said = set()


class SlowPrecisionWarning(UserWarning):
    """An explicitly requested precision that this CPU emulates slowly."""


def onednn_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX): what kernel choices
    (packed bf16 weights) need; no override."""
    return bool(getattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: False)())


def cpu_bf16_native() -> bool:
    """Whether to treat this CPU as running bf16 natively when choosing a precision: :func:`onednn_bf16`,
    unless ``MMSPECTRAL_CPU_BF16`` ('0' or '1') says otherwise."""
    forced = os.environ.get('MMSPECTRAL_CPU_BF16')
    if forced in ('0', '1'):
        return forced == '1'
    return onednn_bf16()


def cpu_precision(dtype: Optional[torch.dtype], *, explicit: bool, where: str,
                  device_type: str = 'cpu') -> Optional[torch.dtype]:
    """The dtype to run ``where`` in: ``dtype`` unless it is bf16 on a CPU without native bf16, where an
    automatic choice (``explicit=False``) becomes None (fp32) with one log line, and an explicit one is kept
    with one :class:`SlowPrecisionWarning`. fp16 on the CPU is treated alike (oneDNN emulates it too)."""
    if device_type != 'cpu' or dtype not in (torch.bfloat16, torch.float16) or \
            (dtype == torch.bfloat16 and cpu_bf16_native()):
        return dtype
    name = 'bf16' if dtype == torch.bfloat16 else 'fp16'
    capability = torch.backends.cpu.get_cpu_capability()
    key = (where, name, explicit)
    if explicit:
        if key not in _said:
            warnings.warn(f'{where}: {name} was asked for, but this CPU ({capability}) has no native '
                          f'{name} units (AVX512-BF16 / AMX), so {name} runs emulated: '
                          f'{EMULATED_BF16_SLOWDOWN}. Use fp32 here unless you need the {name} numbers.',
                          SlowPrecisionWarning, stacklevel=3)
    elif key not in _said:
        from mmengine.logging import print_log
        print_log(f'{where}: this CPU ({capability}) has no native {name} (AVX512-BF16 / AMX); running in '
                  f'fp32 instead of emulated {name} ({EMULATED_BF16_SLOWDOWN}).', logger='current')
    _said.add(key)
    return dtype if explicit else None
