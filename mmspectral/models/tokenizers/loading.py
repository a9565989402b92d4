"""Loading a trained tokenizer out of a TokenizerModel checkpoint (for token extraction and decoding)."""
from typing import Optional, Union

import torch
import torch.nn as nn

from mmspectral.fileio import SAME_ARCHITECTURE, load_state_dict_checked, read_state_dict
from mmspectral.registry import TOKENIZERS
from mmspectral.utils import build_component


def load_tokenizer(tokenizer: Union[dict, nn.Module], checkpoint: Optional[str] = None,
                   prefix: str = 'tokenizer.', device: Union[str, torch.device, None] = None) -> nn.Module:
    """Build a tokenizer (config or module) and load its weights from a TokenizerModel checkpoint.

    The checkpoint is one the Runner wrote, loaded with ``weights_only=True`` (a file that needs full
    unpickling loads only when named in ``trust_files`` / ``--trust-checkpoint`` / ``trust_checkpoints``).
    Its ``state_dict`` holds the EMA weights when training used EMAHook. Keys under ``prefix`` are
    taken; a plain tokenizer state dict (no prefix) works too. The tokenizer is returned frozen and in eval
    mode.
    """
    model = build_component(tokenizer, TOKENIZERS)
    if checkpoint is not None:
        state = read_state_dict(checkpoint, prefix=prefix)
        # a tokenizer built without its pixel decoder ignores the one the checkpoint holds
        ignored = ('pixel_decoder.*', ) if getattr(model, 'pixel_decoder', None) is None else ()
        load_state_dict_checked(model, state, checkpoint, type(model).__name__, SAME_ARCHITECTURE,
                                noun='checkpoint', ignore_unexpected=ignored)
    model.requires_grad_(False)
    model.eval()
    return model.to(device) if device is not None else model
