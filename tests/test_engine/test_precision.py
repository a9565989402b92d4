"""No silent slow path: on a CPU without native bf16 an automatic choice falls back to fp32 with one log line,
an explicit request is honoured with one warning; with native bf16 nothing changes. The capability is forced
both ways (``MMSPECTRAL_CPU_BF16``), so every machine runs both branches."""
import warnings

import pytest
import torch

from mmspectral.engine import AutocastOptimWrapper
from mmspectral.utils import precision
from mmspectral.utils.precision import SlowPrecisionWarning, cpu_bf16_native, cpu_precision


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(precision, '_said', set())


def _forward_dtype(dtype, native, monkeypatch):
    monkeypatch.setenv('MMSPECTRAL_CPU_BF16', '1' if native else '0')
    model = torch.nn.Linear(4, 4)
    kwargs = {} if dtype is None else dict(dtype=dtype)
    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)
    with wrapper.optim_context(model):
        return model(torch.randn(2, 4)).dtype


def test_the_override_is_what_the_checks_see(monkeypatch):
    for value in ('0', '1'):
        monkeypatch.setenv('MMSPECTRAL_CPU_BF16', value)
        assert cpu_bf16_native() is (value == '1')
    monkeypatch.delenv('MMSPECTRAL_CPU_BF16')
    from mmspectral.models.layers.packed_linear import bf16_supported
    assert cpu_bf16_native() == bf16_supported() == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    monkeypatch.setenv('MMSPECTRAL_CPU_BF16', '1')  # the kernels' choice still asks oneDNN itself
    assert bf16_supported() == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_auto_falls_back_to_fp32_once_with_a_log_line(monkeypatch, capsys):
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmspectral_precision_test')
    with warnings.catch_warnings():
        warnings.simplefilter('error', SlowPrecisionWarning)  # an automatic choice never warns
        assert _forward_dtype(None, native=False, monkeypatch=monkeypatch) == torch.float32
        assert _forward_dtype('auto', native=False, monkeypatch=monkeypatch) == torch.float32
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count('no native bf16') == 1 and 'fp32' in text and 'AVX' in text
    assert _forward_dtype(None, native=True, monkeypatch=monkeypatch) == torch.bfloat16


def test_an_explicit_request_is_honoured_with_a_warning(monkeypatch):
    with pytest.warns(SlowPrecisionWarning, match='100x slower'):
        assert _forward_dtype('bfloat16', native=False, monkeypatch=monkeypatch) == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter('error', SlowPrecisionWarning)
        assert _forward_dtype('bfloat16', native=True, monkeypatch=monkeypatch) == torch.bfloat16
        assert _forward_dtype('float32', native=False, monkeypatch=monkeypatch) == torch.float32


def test_gpus_and_fp32_are_left_alone(monkeypatch):
    monkeypatch.setenv('MMSPECTRAL_CPU_BF16', '0')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert cpu_precision(torch.bfloat16, explicit=False, where='t', device_type='cuda') == torch.bfloat16
        assert cpu_precision(None, explicit=False, where='t') is None
        assert cpu_precision(torch.float32, explicit=True, where='t') == torch.float32
