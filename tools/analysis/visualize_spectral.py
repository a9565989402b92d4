"""Spectral decomposition figure: what each token prefix of a schedule reconstructs.

    python tools/analysis/visualize_spectral.py [--image PATH] [--schedule NonUniformFreqSchedule]
        [--num-tokens 64] [--image-size 256] [--prefixes 1 2 4 8 16 32 48 64] [--out spectral.png]

Without ``--image`` it uses a photo that ships with matplotlib (grace_hopper.jpg), or, with
``--embedded-class``, an image of the embedded EmbeddedShapes dataset. The PNG shows the low-pass targets
``I'_k`` for the chosen prefix lengths, the schedule curve ``w_k`` (beside the uniform one), the token that
first covers each DCT frequency, and the share of the image's DCT energy each prefix keeps.
"""
import argparse
import os
import os.path as osp

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from mmspectral.apis import register_all_modules
from mmspectral.cli import existing_file, non_negative_int, output_file, positive_int
from mmspectral.datasets import EMBEDDED_CLASS_SETS, render_shape
from mmspectral.datasets.transforms import LoadImage, ResizeShorter
from mmspectral.launch import prepare
from mmspectral.spectral import UniformFreqSchedule, build_freq_schedule, dct2, lowpass


def default_photo() -> str:
    return osp.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')


def load_square(path: str, size: int) -> np.ndarray:
    """RGB uint8 (size, size, 3): shorter side resized to ``size`` (bicubic, antialiased), centre crop."""
    results = ResizeShorter(size)(LoadImage()(dict(img_path=path)))
    img = results['img']
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top:top + size, left:left + size]


def spectral_figure(img: np.ndarray, schedule, prefixes, title: str = ''):
    """Build the matplotlib figure for an RGB uint8 image (S, S, 3) and a schedule of the same size."""
    x = torch.tensor(img).permute(2, 0, 1).double() / 255.0  # (3, S, S)
    size = schedule.image_size
    prefixes = [k for k in prefixes if 1 <= k <= schedule.num_tokens]
    omegas = [schedule.omega(k) for k in prefixes]
    batch = x[None].expand(len(prefixes), -1, -1, -1)
    targets = lowpass(batch, torch.tensor(omegas)).clamp(0, 1)  # (P, 3, S, S)

    energy = dct2(x).pow(2).sum(0)  # (S, S)
    total = energy.sum()
    level = torch.maximum(torch.arange(size)[:, None], torch.arange(size)[None, :])
    kept = [(energy[level < w].sum() / total).item() for w in schedule.omegas]

    cols = max(len(prefixes), 4)
    fig = plt.figure(figsize=(2.2 * cols, 5.2))
    grid = fig.add_gridspec(2, cols, height_ratios=[1, 1.15])
    for i, (k, w) in enumerate(zip(prefixes, omegas)):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(targets[i].permute(1, 2, 0).numpy())
        ax.set_title(f'k={k}  w={w}', fontsize=9)
        ax.axis('off')

    bottom = grid[1, :].subgridspec(1, 3, wspace=0.35)
    ax = fig.add_subplot(bottom[0])
    ks = np.arange(1, schedule.num_tokens + 1)
    ax.plot(ks, schedule.omegas, label=type(schedule).__name__, lw=2)
    uniform = UniformFreqSchedule(schedule.num_tokens, size) if schedule.num_tokens <= size else None
    if uniform is not None:
        ax.plot(ks, uniform.omegas, '--', label='UniformFreqSchedule', lw=1)
    ax.set_xlabel('token k')
    ax.set_ylabel('cut-off w_k')
    ax.set_title('token-frequency schedule', fontsize=9)
    ax.legend(fontsize=7)

    ax = fig.add_subplot(bottom[1])
    im = ax.imshow(schedule.coverage_map().numpy(), cmap='viridis', origin='upper')
    ax.set_title('token that adds each DCT frequency (u, v)', fontsize=9)
    ax.set_xlabel('v')
    ax.set_ylabel('u')
    fig.colorbar(im, ax=ax, fraction=0.046)

    ax = fig.add_subplot(bottom[2])
    ax.plot(ks, kept, lw=2)
    ax.set_ylim(min(kept) - 0.01, 1.0005)
    ax.set_xlabel('prefix length k')
    ax.set_ylabel('share of DCT energy kept')
    ax.set_title('energy of the low-pass target', fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.05, right=0.98, top=0.88, bottom=0.1, hspace=0.35)
    return fig


def parse_args():
    parser = argparse.ArgumentParser(
        description='Plot the spectral decomposition of an image for a schedule.')
    parser.add_argument('--image', type=existing_file,
                        help='image file (default: matplotlib\'s grace_hopper.jpg)')
    parser.add_argument('--embedded-class', type=non_negative_int, default=None,
                        help='use an EmbeddedShapes image of this class (0-9 of --class-set: ' + '; '.join(
                            f'{key}: {", ".join(names)}' for key, names in EMBEDDED_CLASS_SETS.items()) + ')')
    parser.add_argument('--class-set', default='fine', choices=sorted(EMBEDDED_CLASS_SETS),
                        help='EmbeddedShapes class set of --embedded-class')
    parser.add_argument('--embedded-index', type=non_negative_int, default=0,
                        help='which EmbeddedShapes sample')
    parser.add_argument('--schedule', default='NonUniformFreqSchedule', help='a FREQ_SCHEDULES type')
    parser.add_argument('--num-tokens', type=positive_int, default=64)
    parser.add_argument('--image-size', type=positive_int, default=256)
    parser.add_argument('--prefixes', type=positive_int, nargs='+', default=[1, 2, 4, 8, 16, 32, 48, 64])
    parser.add_argument('--out', type=output_file, default='work_dirs/spectral/spectral_decomposition.png')
    return parser.parse_args()


def main():
    args = parse_args()
    prepare(plots=True)  # figures to files, whatever display there is
    register_all_modules(init_default_scope=False)
    schedule = build_freq_schedule(dict(type=args.schedule), args.num_tokens, args.image_size)
    if args.embedded_class is not None:
        img = render_shape(0, args.embedded_index, args.embedded_class, args.image_size, args.class_set)
        class_name = EMBEDDED_CLASS_SETS[args.class_set][args.embedded_class]
        name = f'EmbeddedShapes "{class_name}" #{args.embedded_index}'
    else:
        path = args.image or default_photo()
        img = load_square(path, args.image_size)
        name = osp.basename(path)
    fig = spectral_figure(img, schedule, args.prefixes,
                          title=f'{name}: {schedule.num_tokens} tokens, {schedule.image_size}px, '
                          f'{type(schedule).__name__}')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
