"""Loading a trained tokenizer out of a TokenizerModel checkpoint (for token extraction and decoding)."""
from typing import Mapping, Optional, Union

import torch
import torch.nn as nn

from mmspectral.fileio import CheckpointLoadError, load_torch_file
from mmspectral.registry import TOKENIZERS
from mmspectral.utils import build_component


def compare_state_dicts(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a CheckpointLoadError listing missing keys, unexpected keys and shape mismatches, if any."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mis_shaped = [f'{k}: checkpoint {list(v.shape)} vs model {list(own[k].shape)}' for k, v in state.items()
                  if k in own and hasattr(v, 'shape') and tuple(v.shape) != tuple(own[k].shape)]
    if missing or unexpected or mis_shaped:
        parts = [f'{len(items)} {what}: {", ".join(items[:6])}{" ..." if len(items) > 6 else ""}'
                 for what, items in (('missing keys', missing), ('unexpected keys', unexpected),
                                     ('shape mismatches', mis_shaped)) if items]
        raise CheckpointLoadError(f'{source} does not fit {type(model).__name__}: ' + '; '.join(parts) +
                                  '. Is it a checkpoint of the same architecture (same arch / width / depth / '
                                  'num_tokens / codebook_size as the config)?')


def load_tokenizer(tokenizer: Union[dict, nn.Module], checkpoint: Optional[str] = None, prefix: str = 'tokenizer.',
                   device: Union[str, torch.device, None] = None) -> nn.Module:
    """Build a tokenizer (config or module) and load its weights from a TokenizerModel checkpoint.

    The checkpoint is one the Runner wrote (a pickle: it is loaded as trusted; use files you or your team made).
    Its ``state_dict`` holds the EMA weights when training used EMAHook. Keys under ``prefix`` are taken; a
    plain tokenizer state dict (no prefix) works too. The tokenizer is returned frozen and in eval mode.
    """
    model = build_component(tokenizer, TOKENIZERS)
    if checkpoint is not None:
        ckpt = load_torch_file(checkpoint, map_location='cpu', trusted=True)
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, Mapping) else ckpt
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        state = {k: v for k, v in state.items() if not k.startswith('pixel_decoder.')} \
            if getattr(model, 'pixel_decoder', None) is None else state
        compare_state_dicts(model, state, checkpoint)
        model.load_state_dict(state, strict=True)
    model.requires_grad_(False)
    model.eval()
    return model.to(device) if device is not None else model
