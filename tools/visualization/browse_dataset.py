"""What a tokenizer config trains on: the data pipeline's output beside its low-pass targets for chosen k.

    python tools/visualization/browse_dataset.py CONFIG [--split train] [--num-images 6] [--prefixes 1 4 8 16]
        [--out browse.png] [--seed 0] [--cfg-options KEY=VALUE ...]

Builds the config's dataset with its pipeline (augmentations included, as training sees them), takes
``--num-images`` samples, and draws one row each: the pipeline's output, then ``lowpass(image, w_k)`` for
every prefix length k under the tokenizer's frequency schedule (the target that prefix is trained to
reconstruct; without a schedule, TiTok tokens, only the image is drawn). Titles give k and w_k.
"""
import argparse
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from mmengine.config import DictAction

from mmspectral.apis import load_config, register_all_modules
from mmspectral.cli import existing_file, non_negative_int, output_file, positive_int
from mmspectral.launch import prepare
from mmspectral.registry import DATASETS, TOKENIZERS
from mmspectral.spectral import lowpass
from mmspectral.utils import build_component


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='A dataset\'s pipeline output and its low-pass targets.')
    parser.add_argument('config', type=existing_file,
                        help='a TokenizerModel config (its dataset and frequency schedule)')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train')
    parser.add_argument('--num-images', type=positive_int, default=6)
    parser.add_argument('--prefixes', type=positive_int, nargs='+', default=None,
                        help='prefix lengths k (default: 1, 2, 4, ... up to N)')
    parser.add_argument('--seed', type=non_negative_int, default=0, help='seeds the augmentations')
    parser.add_argument('--out', type=output_file, default='browse_dataset.png')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE')
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    prepare(plots=True)  # figures to files, whatever display there is
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    tok_cfg = cfg.model.get('tokenizer')
    if tok_cfg is None:
        raise SystemExit(f'{args.config} has no model.tokenizer; pass a tokenizer (or generator) config.')
    with torch.device('meta'):  # only the schedule is needed: no weights allocated
        tok = build_component(tok_cfg.to_dict(), TOKENIZERS)
    has_bands = tok.cutoffs() is not None  # the tokenizer's prefix <-> band mapping
    n = tok.num_tokens
    prefixes = args.prefixes or sorted({min(2 ** i, n) for i in range(n.bit_length() + 1)})
    bad = [k for k in prefixes if not 1 <= k <= n]
    if bad:
        raise SystemExit(f'--prefixes {bad} outside 1..{n}.')
    data_cfg = cfg[f'{args.split}_dataloader']['dataset']
    dataset = DATASETS.build(data_cfg)
    np.random.seed(args.seed)  # the augmentations draw from numpy's and Python's generators
    import random
    random.seed(args.seed)
    count = min(args.num_images, len(dataset))
    cols = 1 + (len(prefixes) if has_bands else 0)
    fig, axes = plt.subplots(count, cols, figsize=(1.5 * cols, 1.55 * count), squeeze=False)
    for row in range(count):
        item = dataset[row]
        image = item['inputs'].float() / 255.0  # (3, H, W), what the data preprocessor receives
        panels = [('pipeline output', image)]
        if has_bands:
            if image.shape[-1] != tok.image_size:
                raise SystemExit(f'The pipeline gives {image.shape[-1]} px images but the schedule is for '
                                 f'{tok.image_size} px; check the config\'s image_size.')
            panels += [(f'k={k}, w={tok.cutoff(k)}', lowpass(image[None], tok.cutoff(k))[0])
                       for k in prefixes]
        label = getattr(item['data_samples'], 'gt_label', None)
        for col, (title, panel) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel.clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=7)
            if col == 0 and label is not None:
                ax.set_ylabel(f'label {int(label.view(-1)[0])}', fontsize=7)
    fig.suptitle(f'{os.path.basename(args.config)}: {args.split} pipeline and low-pass targets', fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f'wrote {args.out}')
    return args.out


if __name__ == '__main__':
    main()
