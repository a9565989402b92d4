"""Linear layers with weights pre-packed for oneDNN, for few-row matmuls on the CPU (sampling).

A sampler multiplies a handful of rows (the batch, doubled for guidance) by every weight matrix at every step,
so it is bound by how fast the weights stream from memory. In fp32 on CPUs, oneDNN's linear with a weight
packed once into its blocked layout (for the expected number of rows) streams two to three times as fast as
the default kernel for 2-16 rows and takes dense inputs, so nothing is converted per call (measured:
docs/results.md). :func:`packed_linears` swaps the forward of every ``nn.Linear`` of a module for the packed
one inside a ``with`` block; packed copies are cached and redone when a weight changes, the row count or the
compute dtype differs. The GELU of timm's ``Mlp`` runs as oneDNN's post-op of ``fc1``, so its hidden
activations are written once.

bf16: under CPU autocast to bf16 (fp32 weights) or with bf16 weights, the packed copies are bf16. Autocast's
own linear converts every fp32 weight to bf16 at every call, which reads four bytes per weight and writes two
before the matmul reads them again, so autocast sampling streams more bytes than fp32 does; the packed bf16
copy is made once and each step reads two bytes per weight. Inputs are cast to bf16 and outputs are bf16, as
autocast's linear gives them.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from timm.layers import Mlp

from mmspectral.utils.precision import onednn_bf16

_announced = set()
_POINTWISE = (hasattr(torch.ops.mkldnn, '_reorder_linear_weight')
              and hasattr(torch.ops.mkldnn, '_linear_pointwise'))


class PackedWeightCache(dict):
    """The cache :func:`packed_linears` fills (layer id -> packed copy), to keep on the sampling module.

    oneDNN's packed tensors cannot be copied or pickled, and their keys are ids of the original layers, so a
    copy of the module (``copy.deepcopy``: an EMA copy, a bf16 copy for sampling) starts with an empty cache.
    """

    def __deepcopy__(self, memo):
        return type(self)()

    def __reduce__(self):
        return type(self), ()


def packed_dtype(module: nn.Module) -> Optional[torch.dtype]:
    """The dtype the packed copies of ``module``'s Linear weights take, or None where packing does not apply.

    fp32 weights outside autocast: fp32. fp32 weights under CPU autocast to bf16, or bf16 weights: bf16 (where
    this CPU's oneDNN has bf16 kernels). Anything else (CUDA, fp16, no oneDNN): None.
    """
    weight = next((m.weight for m in module.modules() if isinstance(m, nn.Linear)), None)
    if weight is None or weight.device.type != 'cpu' or not torch.backends.mkldnn.is_available():
        return None
    autocast = torch.is_autocast_enabled('cpu')
    if weight.dtype == torch.float32 and not autocast:
        return torch.float32
    if _POINTWISE and bf16_supported() and (
            weight.dtype == torch.bfloat16 or (autocast and torch.get_autocast_dtype('cpu') == torch.bfloat16
                                               and weight.dtype == torch.float32)):
        return torch.bfloat16
    return None


def packing_available(module: nn.Module) -> bool:
    """Whether :func:`packed_linears` packs ``module`` (see :func:`packed_dtype`)."""
    return packed_dtype(module) is not None


def bf16_supported() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX; else it would emulate slowly):
    :func:`mmspectral.utils.precision.onednn_bf16`."""
    return onednn_bf16()


def _pack(weight: torch.Tensor, rows: int) -> torch.Tensor:
    if _POINTWISE:
        return torch.ops.mkldnn._reorder_linear_weight(weight, rows)
    return weight.to_mkldnn()


def _packed_forward(weight: torch.Tensor, bias, gelu=None):
    """A Linear's forward on the packed weight; ``gelu`` ('none' or 'tanh') fuses a GELU after it."""
    dtype = weight.dtype if _POINTWISE else torch.float32

    def forward(x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1]).to(dtype).contiguous()
        if _POINTWISE:
            y = torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'gelu' if gelu else 'none', [],
                                                   gelu or '')
        else:  # older torch: the oneDNN tensor path
            y = torch._C._nn.mkldnn_linear(x.to_mkldnn(), weight, bias).to_dense()
            y = nn.functional.gelu(y, approximate=gelu) if gelu else y
        return y.view(*shape[:-1], -1)
    return forward


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _fusable_gelus(module: nn.Module) -> Dict[int, nn.GELU]:
    """id(fc1) -> the GELU right after it, for every timm ``Mlp`` (exactly: gated variants differ)."""
    return {id(m.fc1): m.act for m in module.modules()
            if type(m) is Mlp and type(m.act) is nn.GELU and isinstance(m.fc1, nn.Linear)}


@contextmanager
def packed_linears(module: nn.Module, cache: Dict[int, Tuple[tuple, torch.Tensor]],
                   rows: int = 1) -> Iterator[bool]:
    """Within the block, ``module``'s Linear layers use packed weights (no gradients). Yields whether it did.

    Args:
        module: the model whose ``nn.Linear`` layers to pack.
        cache: a dict kept by the caller between calls: layer id -> ((weight version, rows, dtype, bias
            version), packed weight, bias in that dtype).
        rows: the number of rows most calls will multiply (the layout is chosen for it; others work too).
    """
    dtype = packed_dtype(module)
    if dtype is None:
        yield False
        return
    swapped, gelus = [], _fusable_gelus(module)
    try:
        for layer in module.modules():
            if not isinstance(layer, nn.Linear):
                continue
            bias_version = layer.bias._version if layer.bias is not None else None
            key = (layer.weight._version, rows, dtype, bias_version)  # the bias is cached in the dtype too
            entry = cache.get(id(layer))
            if entry is None or entry[0] != key:
                bias = layer.bias.detach().to(dtype) if layer.bias is not None else None
                entry = cache[id(layer)] = (key, _pack(layer.weight.detach().to(dtype), rows), bias)
            act = gelus.get(id(layer))
            layer.forward = _packed_forward(entry[1], entry[2], act.approximate if act is not None else None)
            swapped.append(layer)
            if act is not None:
                act.forward = _identity  # applied by fc1
                swapped.append(act)
        if (type(module).__name__, dtype) not in _announced:
            _announced.add((type(module).__name__, dtype))
            name = 'bf16' if dtype == torch.bfloat16 else 'fp32'
            print_log(f'{type(module).__name__}: sampling with oneDNN-packed {name} weights on the CPU.',
                      logger='current')
        yield True
    finally:
        for layer in swapped:
            del layer.forward  # back to the class's forward
