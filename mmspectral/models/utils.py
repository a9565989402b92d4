"""Helpers shared by the models."""
from typing import Dict

import torch
import torch.nn as nn


def persistent_tensors(module: nn.Module) -> Dict[str, torch.Tensor]:
    """Every parameter and persistent buffer of ``module`` by name: what its ``state_dict`` holds, also for a
    module kept out of checkpoints (whose own ``state_dict`` is then empty)."""
    out = {}
    for sub_name, sub in module.named_modules():
        sub_prefix = f'{sub_name}.' if sub_name else ''
        for name, param in sub._parameters.items():
            if param is not None:
                out[sub_prefix + name] = param
        for name, buf in sub._buffers.items():
            if buf is not None and name not in sub._non_persistent_buffers_set:
                out[sub_prefix + name] = buf
    return out


def keep_out_of_checkpoints(module: nn.Module) -> nn.Module:
    """Leave a frozen, pretrained module's tensors out of every state dict that contains it.

    Perceptual networks and VQGAN teachers come from their own weights files and never change; saving them in
    each checkpoint (and in the EMA copy) would add hundreds of MB. Loading a state dict without them keeps
    the module's current tensors, so resuming reports no missing keys.
    """

    def drop(mod, state_dict, prefix, local_metadata):
        for key in [k for k in state_dict if k.startswith(prefix)]:
            del state_dict[key]

    def fill(mod, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        for name, tensor in persistent_tensors(mod).items():
            state_dict.setdefault(prefix + name, tensor.detach())

    if not getattr(module, '_kept_out_of_checkpoints', False):
        module._register_state_dict_hook(drop)
        module._register_load_state_dict_pre_hook(fill, with_module=True)
        module._kept_out_of_checkpoints = True
    return module
