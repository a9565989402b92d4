"""Convert an official TiTok tokenizer checkpoint to mmspectral's TiTokTokenizer.

    python tools/model_converters/titok_to_mmspectral.py tokenizer_titok_b64.bin titok_b64_mmspectral.pth

The input is the state dict the TiTok release ships (e.g. ``tokenizer_titok_b64.bin``, a plain state dict of
tensors, read with ``weights_only=True``). The output holds ``state_dict`` with keys of
``TokenizerModel(tokenizer=TiTokTokenizer(...))`` (prefix ``tokenizer.``) and ``meta`` with the tokenizer
arguments the weights need; use it with ``load_from`` or ``tools/test.py``. The official B-64 / L-32 / S-128
weights use TiTok's legacy token projection, so the converted config sets ``legacy_token_projection=True``;
use ``--no-legacy`` for checkpoints trained with ``is_legacy: False``.

Renames: nn.MultiheadAttention's ``in_proj_*`` / ``out_proj`` -> ``attn.qkv`` / ``attn.proj``; ``mlp.c_fc`` /
``mlp.c_proj`` -> ``mlp.fc1`` / ``mlp.fc2``; 1x1 convs -> linear layers (``encoder.conv_out`` ->
``encoder.token_proj``, ``decoder.ffn.*``); ``quantize`` -> ``quantizer``; ``pixel_quantize`` /
``pixel_decoder`` -> ``pixel_decoder.quantize`` / ``pixel_decoder.decoder`` (the MaskGIT-VQGAN decoder of
stage 2).
"""
import argparse
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch

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


def main():
    parser = argparse.ArgumentParser(description='Convert an official TiTok checkpoint for mmspectral.')
    parser.add_argument('src', help='official TiTok state dict (.bin / .pth)')
    parser.add_argument('dst', help='output checkpoint for mmspectral')
    parser.add_argument('--head-dim', type=int, default=64,
                        help='attention head width (64 in every TiTok size)')
    parser.add_argument('--no-legacy', action='store_true',
                        help='the checkpoint was trained with is_legacy: False (a correct token projection)')
    args = parser.parse_args()
    from mmspectral.engine import load_torch_file
    official = load_torch_file(args.src)
    official = official.get('state_dict', official)
    converted, arch = convert_titok_state_dict(official, args.head_dim)
    arch['legacy_token_projection'] = not args.no_legacy
    state_dict = OrderedDict(('tokenizer.' + k, v) for k, v in converted.items())
    torch.save(dict(state_dict=state_dict,
                    meta=dict(tokenizer_args=arch, converted_from=osp.basename(args.src))),
               args.dst)
    print(f'wrote {args.dst}: {len(state_dict)} tensors. Tokenizer arguments: {arch}')


if __name__ == '__main__':
    main()
