"""Parameters and FLOPs of a config's networks, per image (``mmengine.analysis``).

    python tools/analysis/get_flops.py CONFIG [--image-size 256] [--table]
        [--cfg-options KEY=VALUE ...]

A tokenizer config gives the encoder (image -> N latent tokens, before quantisation) and the decoder (N
tokens -> image, through the pixel decoder when it predicts proxy codes); a generator config gives the
generator's teacher-forced forward over N tokens (one training step's forward for one image; a KV-cached
sampler does about this much work per image, twice with classifier-free guidance) and its tokenizer's
decoder. Weights are random (nothing is loaded): FLOPs do not depend
on them.

FLOPs follow ``mmengine.analysis`` (fvcore's convention): one fused multiply-add counts as one FLOP, and
operators it has no handle for (softmax, normalisation, element-wise ops, and the attention product itself
inside ``scaled_dot_product_attention``) count as zero, so the figures are the linear layers and convolutions,
which dominate at these sequence lengths (at most 321 positions). Compare them with others' figures only when
they count the same way.
"""
import argparse

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.print_helper import complexity_stats_table
from mmengine.config import DictAction

from mmspectral.apis import load_config, register_all_modules
from mmspectral.apis.pretrained import inference_config
from mmspectral.cli import existing_file, positive_int
from mmspectral.registry import MODELS


class Encode(nn.Module):
    def __init__(self, tok):
        super().__init__()
        self.tok = tok

    def forward(self, images):
        return self.tok.encode_continuous(images)


class Decode(nn.Module):
    def __init__(self, tok):
        super().__init__()
        self.tok = tok

    def forward(self, latents):
        return self.tok.to_images(self.tok.decode(latents))


class Generate(nn.Module):
    def __init__(self, gen):
        super().__init__()
        self.gen = gen

    def forward(self, tokens, labels):
        return self.gen(tokens, labels)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Parameters and FLOPs per image of a config\'s networks.')
    parser.add_argument('config', type=existing_file)
    parser.add_argument('--image-size', type=positive_int, default=None,
                        help='default: the tokenizer\'s image size')
    parser.add_argument('--table', action='store_true', help='also print the per-module table')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE')
    return parser.parse_args(argv)


def build(cfg):
    """The config's model without weights files, losses or teachers."""
    model_cfg = cfg.model.to_dict()
    if model_cfg.get('type') == 'GeneratorModel':
        model_cfg['tokenizer_checkpoint'] = None
    model_cfg = inference_config(model_cfg)
    return MODELS.build(model_cfg).eval()


def count(module: nn.Module, inputs, parts, table: bool):
    """(FLOPs, parameters of ``parts``, the per-module table or None) of ``module(*inputs)``."""
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    flops = analyzer.total()
    params = sum(p.numel() for part in parts if part is not None for p in part.parameters())
    return flops, params, (complexity_stats_table(analyzer, max_depth=3) if table else None)


@torch.no_grad()
def main(argv=None):
    args = parse_args(argv)
    register_all_modules()
    model = build(load_config(args.config, args.cfg_options))
    tok = model.codec
    is_tokenizer = tok is getattr(model, 'tok', None)
    rows = []
    size = args.image_size or tok.image_size
    images = torch.zeros(1, 3, size, size)
    latents = tok.encode_continuous(images)  # (1, N, D)
    if is_tokenizer:
        rows.append(('tokenizer encoder (image -> latents)',
                     *count(Encode(tok), (images,), [tok.encoder], args.table)))
    else:
        gen = model.gen
        tokens = torch.zeros(1, gen.num_tokens, dtype=torch.long)
        rows.append((f'generator forward ({gen.num_tokens} tokens)',
                     *count(Generate(gen), (tokens, torch.zeros(1, dtype=torch.long)), [gen], args.table)))
    rows.append(('tokenizer decoder (latents -> image)',
                 *count(Decode(tok), (latents,), [tok.decoder, getattr(tok, 'pixel_decoder', None)],
                        args.table)))
    print(f'{args.config} at {size} px, {latents.shape[1]} tokens '
          '(per image, batch 1; fused multiply-add = 1 FLOP)')
    print("| network | parameters | GFLOPs |\n|---|---|---|")
    for name, flops, params, _ in rows:
        print(f'| {name} | {params / 1e6:.2f}M | {flops / 1e9:.3f} |')
    for name, _, _, table in rows:
        if table:
            print(f'\n{name}\n{table}')
    return rows


if __name__ == '__main__':
    main()
