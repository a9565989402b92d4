"""Official TiTok tokenizer weights -> mmspectral's TiTokTokenizer
(tools/model_converters/titok_to_mmspectral.py writes the converted checkpoint).

Renames: nn.MultiheadAttention's ``in_proj_*`` / ``out_proj`` -> ``attn.qkv`` / ``attn.proj``; ``mlp.c_fc`` /
``mlp.c_proj`` -> ``mlp.fc1`` / ``mlp.fc2``; 1x1 convs -> linear layers (``encoder.conv_out`` ->
``encoder.token_proj``, ``decoder.ffn.*``); ``quantize`` -> ``quantizer``; ``pixel_quantize`` /
``pixel_decoder`` -> ``pixel_decoder.quantize`` / ``pixel_decoder.decoder`` (the MaskGIT-VQGAN decoder of
stage 2).
"""
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch

__all__ = ['convert_titok_state_dict']

_RENAMES = (
    (r'\.attn\.in_proj_weight$', '.attn.qkv.weight'),
    (r'\.attn\.in_proj_bias$', '.attn.qkv.bias'),
    (r'\.attn\.out_proj\.', '.attn.proj.'),
    (r'\.mlp\.c_fc\.', '.mlp.fc1.'),
    (r'\.mlp\.c_proj\.', '.mlp.fc2.'),
    (r'^encoder\.conv_out\.', 'encoder.token_proj.'),
    (r'^quantize\.', 'quantizer.'),
    (r'^pixel_decoder\.', 'pixel_decoder.decoder.'),
    (r'^pixel_quantize\.', 'pixel_decoder.quantize.'),
)


def convert_titok_state_dict(official: Dict[str, torch.Tensor],
                             head_dim: int = 64) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Official TiTok keys -> TiTokTokenizer keys, and the tokenizer arguments the weights imply.

    The number of attention heads is not in the weights; every TiTok size (S, B, L) uses ``head_dim`` 64.
    """
    if 'encoder.patch_embed.weight' not in official or 'latent_tokens' not in official:
        raise KeyError('This does not look like a TiTok tokenizer state dict (no encoder.patch_embed.weight '
                       f'/ latent_tokens); its first keys are {list(official)[:5]}.')
    proxy_head = 'decoder.ffn.2.weight' in official
    out = OrderedDict()
    for key, value in official.items():
        new = key
        if key.startswith('decoder.ffn.0.') and not proxy_head:
            new = key.replace('decoder.ffn.0.', 'decoder.pixel_head.')
        for pattern, repl in _RENAMES:
            new = re.sub(pattern, repl, new)
        if value.dim() == 4 and value.shape[-2:] == (1, 1) and (
                new.startswith(('encoder.token_proj.', 'decoder.ffn.', 'decoder.pixel_head.'))):
            value = value[:, :, 0, 0]  # a 1x1 conv is a linear layer
        out[new] = value
    width = official['encoder.patch_embed.weight'].shape[0]
    patch = official['encoder.patch_embed.weight'].shape[-1]
    grid = round((official['encoder.positional_embedding'].shape[0] - 1) ** 0.5)
    depth = 1 + max(int(m.group(1)) for k in official
                    for m in [re.match(r'encoder\.transformer\.(\d+)\.', k)] if m)
    arch = dict(width=width, depth=depth, num_heads=width // head_dim, image_size=grid * patch,
                patch_size=patch, num_tokens=official['latent_tokens'].shape[0],
                token_size=official['encoder.conv_out.weight'].shape[0],
                codebook_size=official['quantize.embedding.weight'].shape[0],
                decoder_head='proxy_codes' if proxy_head else 'pixels')
    if proxy_head:
        arch['proxy_codebook_size'] = official['decoder.ffn.2.weight'].shape[0]
    return out, arch
