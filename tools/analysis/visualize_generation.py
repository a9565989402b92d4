"""Figures of a trained generator: a class-by-class sample grid and a coarse-to-fine progression.

    python tools/analysis/visualize_generation.py MODEL_FOLDER (or GENERATOR_CONFIG CHECKPOINT) --out-dir DIR
        [--per-class 8] [--progression-classes 0 3 6 8] [--cfg 3.0] [--top-k 0] [--seed 0]

Writes ``DIR/class_grid.png`` (one row per class, ``per_class`` samples, the class name on the left) and
``DIR/progression.png`` (one row per chosen class: the decoded prefix after every sampling step, so each
column adds the next band of frequencies). Sampling settings default to the config's ``model.sampling``; the
same seed gives the same figures.
"""
import argparse
import os
import os.path as osp

import matplotlib.pyplot as plt
import torch
from mmengine.config import DictAction
from torchvision.utils import make_grid

from mmspectral.apis import add_sampling_args, init_generator, sampling_options
from mmspectral.cli import add_model_args, check_model_args, non_negative_int, output_folder, positive_int
from mmspectral.launch import prepare


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Class grid and coarse-to-fine progression of a generator.')
    add_model_args(parser, 'generator')
    parser.add_argument('--out-dir', type=output_folder, required=True)
    parser.add_argument('--per-class', type=positive_int, default=8, help='samples per class in the grid')
    parser.add_argument('--progression-classes', type=non_negative_int, nargs='+', default=None,
                        help='classes of the progression rows (default: up to 5 spread over all classes)')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    add_sampling_args(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args(argv)
    check_model_args(parser, args)
    return args


def class_names(model, num_classes: int):
    """Class names from the generator's training data when the config names them, else the indices."""
    names = getattr(model, 'class_names', None)
    if names and len(names) >= num_classes:
        return list(names[:num_classes])
    return [str(c) for c in range(num_classes)]


def class_grid(model, num_classes: int, per_class: int, seed: int, names, **options):
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = model.sample(labels, seed=seed, **options)['images'].cpu()
    fig, axes = plt.subplots(num_classes, 1, figsize=(0.9 * per_class + 1.2, 0.95 * num_classes),
                             squeeze=False)
    for c, ax in enumerate(axes[:, 0]):
        row = make_grid(images[c * per_class:(c + 1) * per_class], nrow=per_class, padding=1, pad_value=1.0)
        ax.imshow(row.permute(1, 2, 0).numpy())
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(names[c], rotation=0, ha='right', va='center', fontsize=9)
        for side in ax.spines.values():
            side.set_visible(False)
    fig.suptitle(f'class-conditional samples ({per_class} per class)', fontsize=10)
    fig.tight_layout()
    return fig


def progression_figure(model, classes, seed: int, names, **options):
    result = model.progression(torch.as_tensor(classes), seed=seed, **options)
    steps = result['steps']  # [(prefix length, images (B, 3, H, W))]
    fig, axes = plt.subplots(len(classes), len(steps), figsize=(1.05 * len(steps) + 1.0, 1.15 * len(classes)),
                             squeeze=False)
    for j, (k, images) in enumerate(steps):
        for i in range(len(classes)):
            ax = axes[i, j]
            ax.imshow(images[i].clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(f'k={k}', fontsize=8)
            if j == 0:
                ax.set_ylabel(names[classes[i]], rotation=0, ha='right', va='center', fontsize=9)
    fig.suptitle('coarse-to-fine: the image decoded from the first k generated tokens', fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None):
    args = parse_args(argv)
    prepare(plots=True)  # figures to files, whatever display there is
    model = init_generator(args.model, args.checkpoint, args.device, args.cfg_options)
    options = sampling_options(args)
    model.sampling_options(options, 'the sampling options')  # before anything is drawn or written
    num_classes = model.gen.num_classes
    names = class_names(model, num_classes)
    classes = args.progression_classes
    if classes is None:
        classes = sorted({round(i * (num_classes - 1) / 4) for i in range(min(5, num_classes))})
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise SystemExit(f'--progression-classes {bad} outside the generator\'s {num_classes} classes.')
    os.makedirs(args.out_dir, exist_ok=True)
    with torch.no_grad():
        for name, fig in (('class_grid.png', class_grid(model, num_classes, args.per_class, args.seed, names,
                                                        **options)),
                          ('progression.png', progression_figure(model, classes, args.seed, names,
                                                                 **options))):
            path = osp.join(args.out_dir, name)
            fig.savefig(path, dpi=110)
            plt.close(fig)
            print(f'wrote {path}', flush=True)


if __name__ == '__main__':
    main()
