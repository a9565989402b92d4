"""2x super-resolution against ground truth at tiny scale: the quick start's generator on EmbeddedShapes.

    bash tools/quickstart.sh                                   # first, once: the models
    python tools/analysis/superres_tiny.py [--quickstart-dir work_dirs/quickstart]
        [--work-dir work_dirs/superres_tiny] [--per-class 20] [--cutoffs 4 8 16 32 64]

Renders 2S px images (S = 64 for the quick start), area-down-samples them to S, super-resolves them back to
2S (bicubic; SpectralAR-Stride and -Patch keeping the tokens whose cut-off w_k is at most each of
``--cutoffs``, the default last one, S, keeping every token: the tokenizer alone) and compares with the
renders: PSNR overall and per DCT band of the 2S grid, PSNR of the result down-sampled again against the
input, and the class accuracy and Frechet distance of a probe that sees 2S px (trained once, into the work
dir). The figures are ``mmspectral.evaluation.superres.superres_ground_truth``'s. Writes superres.md,
superres.json (with the commit and the model used) and superres.png (the first image of ``--examples``
classes: the render, the input shown at 2S, then each method) into the work dir.
"""
import argparse
import os
import os.path as osp
import subprocess

import numpy as np
import torch

from mmspectral.apis import init_generator
from mmspectral.cli import non_negative_int, output_folder, positive_int
from mmspectral.evaluation.superres import SUPERRES_SEED, superres_ground_truth
from mmspectral.fileio import write_report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='2x super-resolution against 2x renders (EmbeddedShapes).')
    parser.add_argument('--quickstart-dir', default='work_dirs/quickstart',
                        help='the quick start work dir (its models/generator folder is used)')
    parser.add_argument('--generator', default=None,
                        help='a generator model folder (default: QUICKSTART_DIR/models/generator)')
    parser.add_argument('--work-dir', type=output_folder, default='work_dirs/superres_tiny',
                        help='where the results go')
    parser.add_argument('--per-class', type=positive_int, default=20, help='images per class')
    parser.add_argument('--cutoffs', type=positive_int, nargs='+', default=None,
                        help='kept bands in pixels of S (default S/16, S/8, S/4, S/2, S)')
    parser.add_argument('--probe', default=None,
                        help='probe that sees 2S px (default WORK_DIR/shapes_probe_<2S>px.pth; trained there '
                             'when missing)')
    parser.add_argument('--probe-steps', type=positive_int, default=250, help='training steps of a new probe')
    parser.add_argument('--seed', type=non_negative_int, default=SUPERRES_SEED,
                        help='render seed of the images')
    parser.add_argument('--sample-seed', type=non_negative_int, default=0,
                        help='seed of the generated tokens')
    parser.add_argument('--batch-size', type=positive_int, default=50,
                        help='images per super-resolution batch')
    parser.add_argument('--examples', type=positive_int, default=5, help='classes shown in superres.png')
    return parser.parse_args(argv)


def _commit() -> str:
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=root, capture_output=True,
                              text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return head or 'unknown'


def table(result) -> str:
    edges = result['edges']
    bands = [f'w{lo}-{hi}' for lo, hi in zip(edges, edges[1:])]
    lines = ['| method | kept tokens | PSNR (dB) | ' + ' | '.join(f'PSNR {b} (dB)' for b in bands)
             + ' | input kept (dB) | class accuracy | probe FD |',
             '|---|---|---|' + '---|' * len(bands) + '---|---|---|']
    for row in result['rows']:
        kept = '-' if row['keep_tokens'] is None else f"{row['keep_tokens']} (w <= {row['keep_cutoff']})"
        lines.append(f"| {row['name']} | {kept} | {row['psnr']:.2f} | "
                     + ' | '.join(f"{row['bands'][b]:.1f}" for b in bands)
                     + f" | {row['input_psnr']:.1f} | {row['class_accuracy']:.3f} | {row['probe_fd']:.2f} |")
    real = result['real']
    lines.append(f"| the {2 * result['image_size']} px renders | - | - |" + ' - |' * len(bands)
                 + f" - | {real['class_accuracy']:.3f} | {real['probe_fd']:.2f} |")
    return '\n'.join(lines) + '\n'


def figure(result, path: str, classes: int) -> None:
    """One row per class (its first image): the render, the input at 2S, then each method; a white gap."""
    from PIL import Image
    labels = result['labels']
    names = ['render', 'input'] + [row['name'] for row in result['rows']]
    firsts = [int(torch.nonzero(labels == c)[0]) for c in labels.unique()[:classes]]
    pad = 2
    rows = []
    for i in firsts:
        cells = [(result['images'][n][i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                 for n in names]
        rows.append(np.concatenate([np.pad(c, ((pad, pad), (pad, pad), (0, 0)), constant_values=255)
                                    for c in cells], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    print(f'wrote {path} (columns: {", ".join(names)})')


def main(argv=None):
    args = parse_args(argv)
    generator = args.generator or osp.join(args.quickstart_dir, 'models', 'generator')
    if not osp.isdir(generator):
        raise SystemExit(f'No generator model folder at {generator}: run bash tools/quickstart.sh first (it '
                         'writes models/generator), or pass --generator FOLDER.')
    torch.manual_seed(0)
    model = init_generator(generator)
    size = model.tokenizer.image_size
    os.makedirs(args.work_dir, exist_ok=True)
    probe = args.probe or osp.join(args.work_dir, f'shapes_probe_{2 * size}px.pth')
    result = superres_ground_truth(model, probe, per_class=args.per_class, cutoffs=args.cutoffs,
                                   seed=args.seed, sample_seed=args.sample_seed, batch_size=args.batch_size,
                                   probe_steps=args.probe_steps)
    md = table(result)
    print(md)
    summary = {k: v for k, v in result.items() if k not in ('images', 'labels')}
    summary.update(commit=_commit(), generator=generator, probe=probe, seed=args.seed,
                   sample_seed=args.sample_seed, sampling=dict(model.sampling))
    write_report(args.work_dir, 'superres', md, summary)
    figure(result, osp.join(args.work_dir, 'superres.png'), args.examples)
    return summary


if __name__ == '__main__':
    main()
