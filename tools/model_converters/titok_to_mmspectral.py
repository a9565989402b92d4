"""Convert an official TiTok tokenizer checkpoint to mmspectral's TiTokTokenizer.

    python tools/model_converters/titok_to_mmspectral.py tokenizer_titok_b64.bin titok_b64_mmspectral.pth

The input is the state dict the TiTok release ships (e.g. ``tokenizer_titok_b64.bin``, a plain state dict of
tensors, read with ``weights_only=True``). The output holds ``state_dict`` with keys of
``TokenizerModel(tokenizer=TiTokTokenizer(...))`` (prefix ``tokenizer.``) and ``meta`` with the tokenizer
arguments the weights need; use it with ``load_from`` or ``tools/test.py``. The official B-64 / L-32 / S-128
weights use TiTok's legacy token projection, so the converted config sets ``legacy_token_projection=True``;
use ``--no-legacy`` for checkpoints trained with ``is_legacy: False``.

The renames are :func:`mmspectral.models.tokenizers.titok_convert.convert_titok_state_dict`'s.
"""
import argparse
import os.path as osp
from collections import OrderedDict

import torch

from mmspectral.models.tokenizers.titok_convert import convert_titok_state_dict


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description='Convert an official TiTok checkpoint for mmspectral.')
    parser.add_argument('src', help='official TiTok state dict (.bin / .pth)')
    parser.add_argument('dst', help='output checkpoint for mmspectral')
    parser.add_argument('--head-dim', type=int, default=64,
                        help='attention head width (64 in every TiTok size)')
    parser.add_argument('--no-legacy', action='store_true',
                        help='the checkpoint was trained with is_legacy: False (a correct token projection)')
    args = parser.parse_args(argv)
    from mmspectral.engine import load_torch_file
    from mmspectral.fileio import atomic_write_path
    official = load_torch_file(args.src)
    official = official.get('state_dict', official)
    converted, arch = convert_titok_state_dict(official, args.head_dim)
    arch['legacy_token_projection'] = not args.no_legacy
    state_dict = OrderedDict(('tokenizer.' + k, v) for k, v in converted.items())
    with atomic_write_path(args.dst) as tmp:  # an interrupted run leaves no half-written file
        torch.save(dict(state_dict=state_dict,
                        meta=dict(tokenizer_args=arch, converted_from=osp.basename(args.src))), tmp)
    print(f'wrote {args.dst}: {len(state_dict)} tensors. Tokenizer arguments: {arch}')
    return arch


if __name__ == '__main__':
    main()
