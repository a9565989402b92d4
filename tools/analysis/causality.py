"""The causality study of paper section 4.2: how much of each token is a linear function of the tokens
before it.

    python tools/analysis/causality.py [--num-images 2000] [--image-size 64] [--image-dir DIR] [--seed 2]
        [--sequences raster scale scale-cumulative spectral spectral-cumulative]
        [--scale-sides 8 16 32 64] [--omegas 8 16 32 64 | --schedule NonUniformFreqSchedule]
        [--pca-dim D | --no-pca] [--train-fraction 0.75] [--split-seed 0] [--grid 64]
        [--tokenizer CONFIG CHECKPOINT [NAME]]... [--token-space latent|quantized]
        [--out-dir work_dirs/causality]

Images: EmbeddedShapes images 0..N-1 of split ``--seed`` (2 = the tiny configs' test split), or the first N
files under ``--image-dir``. Each image becomes 4-element sequences (raster quadrants; VAR-style scale
residuals or their running sums; DCT bands or the nested low-pass sub-images) and, with ``--tokenizer``, the N
learned tokens of each trained tokenizer. Two held-out R^2 of ``t_j`` on ``t_1..t_{j-1}`` are reported: the
best single earlier element of each element (the paper's "linear correlation", Figure 4) and least squares on
the top principal axes of all earlier elements. docs/causality.md defines both. Writes ``causality.md`` (also
printed), ``causality.json`` and one PNG per sequence into ``--out-dir``.
"""
import argparse
import os
import os.path as osp
import sys
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from mmspectral.analysis import (best_single_r2, encode_learned_tokens, frame_maps, load_images,
                                 luminance_elements, pairwise_r2, raster_tokens, scale_tokens, sequence_r2,
                                 spectral_tokens, split_indices)
from mmspectral.apis import load_config, register_all_modules
from mmspectral.cli import bounded, existing_path, non_negative_int, output_folder, positive_int
from mmspectral.datasets import EMBEDDED_CLASS_SETS
from mmspectral.fileio import write_json
from mmspectral.launch import prepare
from mmspectral.models.tokenizers.loading import load_tokenizer, settle_value_range
from mmspectral.spectral import build_freq_schedule

SEQUENCES = ('raster', 'scale', 'scale-cumulative', 'spectral', 'spectral-cumulative')
ESTIMATORS = {'best1': 'best single earlier element', 'pca': 'least squares on the top {d} principal axes'}
# Table 1 of the paper (ImageNet; tokens and regression only partly described there).
PAPER = {'raster': (0.471, 0.366, 0.525, 0.454), 'scale': (0.889, 0.953, 0.943, 0.928),
         'spectral': (0.916, 0.977, 0.994, 0.962)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='R^2 of each token on the tokens before it (paper Table 1, Fig. 4).')
    parser.add_argument('--num-images', type=positive_int, default=2000)
    parser.add_argument('--image-size', type=positive_int, default=64,
                        help='side of the images the sequences are cut from')
    parser.add_argument('--image-dir', type=existing_path, default=None,
                        help='a folder of images (default: EmbeddedShapes)')
    parser.add_argument('--seed', type=non_negative_int, default=2,
                        help='EmbeddedShapes split seed (2: the tiny test split)')
    parser.add_argument('--class-set', default='fine', choices=sorted(EMBEDDED_CLASS_SETS),
                        help="EmbeddedShapes class set ('coarse' for tokenizers trained on it, as the tiny "
                        'configs)')
    parser.add_argument('--sequences', nargs='+', choices=SEQUENCES, default=list(SEQUENCES))
    parser.add_argument('--scale-sides', type=positive_int, nargs='+', default=None,
                        help='sides of the scale-wise maps, ending at the image size '
                        '(default: S/8 S/4 S/2 S)')
    parser.add_argument('--omegas', type=positive_int, nargs='+', default=None,
                        help='DCT cut-offs w_1..w_L of the spectral bands, ending at the image size '
                        '(default: S/8 S/4 S/2 S)')
    parser.add_argument('--schedule', default=None,
                        help='take the cut-offs from this FREQ_SCHEDULES type with 4 tokens instead of '
                        '--omegas')
    parser.add_argument('--pca-dim', type=positive_int, default=None,
                        help='principal axes of the earlier tokens in the least-squares estimator, used when '
                        'they have more elements than this (default: min(128, fit images // 8))')
    parser.add_argument('--no-pca', action='store_true', help='report the best-single-element estimator only')
    parser.add_argument('--train-fraction', type=bounded(float, 0, 1, low_open=True, high_open=True),
                        default=0.75,
                        help='images the regressions are fitted on')
    parser.add_argument('--split-seed', type=non_negative_int, default=0)
    parser.add_argument('--grid', type=positive_int, default=64, help='elements are luminance pixels every '
                        'max(1, S // grid) pixels')
    parser.add_argument('--tokenizer', nargs='+', action='append', default=[],
                        metavar='CONFIG CHECKPOINT [NAME]',
                        help='a trained tokenizer (a TokenizerModel config and its checkpoint); repeatable')
    parser.add_argument('--token-space', choices=['latent', 'quantized'], default='latent',
                        help="learned tokens as the encoder's pre-quantisation output or as their codebook "
                        'vectors')
    parser.add_argument('--batch-size', type=positive_int, default=100,
                        help='images per tokenizer forward pass')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out-dir', type=output_folder, default='work_dirs/causality')
    args = parser.parse_args(argv)
    for spec in args.tokenizer:
        if len(spec) not in (2, 3):
            parser.error(f'--tokenizer takes CONFIG CHECKPOINT [NAME], got {spec}.')
        for path in spec[:2]:
            if not osp.isfile(path):
                parser.error(f'--tokenizer {" ".join(spec)}: {path} does not exist.')
    return args


def cutoffs(args, size: int):
    """(scale sides, spectral cut-offs) for ``size``-pixel images."""
    if size % 8:
        default = None
    else:
        default = [size // 8, size // 4, size // 2, size]
    sides = args.scale_sides or default
    if args.schedule:
        omegas = list(build_freq_schedule(dict(type=args.schedule), 4, size).omegas)
    else:
        omegas = args.omegas or default
    if sides is None or omegas is None:
        raise ValueError(f'--image-size {size} is not divisible by 8: give --scale-sides and --omegas '
                         'explicitly.')
    return sides, omegas


def image_sequence(name: str, images: torch.Tensor, sides, omegas):
    """The tokens of sequence ``name`` and where each token's pixels sit in the image (row, column)."""
    size = images.shape[-1]
    if name == 'raster':
        h = size // 2
        return raster_tokens(images), [(0, 0), (0, h), (h, 0), (h, h)]
    if name.startswith('scale'):
        tokens = scale_tokens(images, sides, cumulative=name.endswith('cumulative'))
    else:
        tokens = spectral_tokens(images, omegas, cumulative=name.endswith('cumulative'))
    return tokens, [(0, 0)] * len(tokens)


def summarise(rows):
    """Rows of sequence_r2 / best_single_r2 -> JSON-ready dicts and averages."""
    out = [{k: v for k, v in r.items() if k in ('j', 'r2_avg', 'r2_pooled', 'num_predictors')} for r in rows]
    first3 = [r['r2_avg'] for r in rows if r['j'] <= 4]
    return dict(rows=out, average=float(np.mean([r['r2_avg'] for r in rows])),
                average_j2_4=float(np.mean(first3)) if first3 else None)


# --------------------------------------------------------------------------- figures
def image_figure(name: str, maps, title: str):
    """Figure 4 for one sequence: per target token, where its elements' best predictors lie, and how good."""
    n = len(maps) + 1
    fig, axes = plt.subplots(len(maps), n + 1, figsize=(2.3 * (n + 1), 2.3 * len(maps) + 0.6), squeeze=False)
    cmap = plt.get_cmap('tab10')
    for row, m in enumerate(maps):
        j = row + 2
        for i in range(n - 1):
            ax = axes[row, i]
            ax.set_xticks([]), ax.set_yticks([])
            if i >= j - 1:
                ax.axis('off')
                continue
            counts = m['counts'][i].astype(float)
            ax.imshow(np.log1p(counts), cmap='magma')
            ax.set_title(f't{j}: chose t{i + 1} x{int(counts.sum())}', fontsize=8)
        ax = axes[row, n - 1]
        tok = np.ma.masked_equal(m['best_token'], 0)
        ax.imshow(tok, cmap=cmap, vmin=0.5, vmax=10.5, interpolation='nearest')
        ax.set_title(f't{j}: best source token', fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        ax = axes[row, n]
        im = ax.imshow(m['best_r2'], cmap='viridis', vmin=0, vmax=1)
        ax.set_title(f't{j}: held-out R^2 (mean {np.nanmean(m["best_r2"]):.3f})', fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, n].tolist(), fraction=0.05)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(n - 1)]
    fig.legend(handles, [f't{i + 1}' for i in range(n - 1)], loc='lower center', ncol=n - 1, fontsize=8)
    fig.suptitle(f'{name}: {title}\n'
                 'counts (log scale) of each earlier element being the best single predictor', fontsize=9)
    return fig


def learned_figure(name: str, pair: np.ndarray, share: np.ndarray, title: str):
    """Learned tokens: R^2 of t_j on t_i alone, and which earlier token holds each dimension's best
    predictor."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    n = pair.shape[0]
    for ax, mat, label in ((axes[0], pair, 'held-out R^2 of t_j on t_i alone (least squares)'),
                           (axes[1], share, "share of t_j's dims whose best single predictor is in t_i")):
        im = ax.imshow(np.ma.masked_invalid(mat), cmap='viridis', vmin=0, vmax=1)
        ax.set_xlabel('earlier token i'), ax.set_ylabel('token j')
        ax.set_xticks(range(n)), ax.set_yticks(range(n))
        ax.set_xticklabels(range(1, n + 1), fontsize=6), ax.set_yticklabels(range(1, n + 1), fontsize=6)
        ax.set_title(label, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    best = np.nanargmax(np.where(np.isnan(pair[1:]), -np.inf, pair[1:]), axis=1)
    axes[0].scatter(best, np.arange(1, n), marker='x', color='red', s=14)
    fig.suptitle(f'{name}: {title} (x: best earlier token)', fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- table
def markdown_table(results, estimator: str, columns, max_j: int) -> str:
    head = '| R^2 (held out) | ' + ' | '.join(columns) + ' |'
    lines = [head, '|' + '---|' * (len(columns) + 1)]

    def cell(col, j):
        rows = results[col].get(estimator)
        if rows is None:
            return ''
        hit = [r['r2_avg'] for r in rows['rows'] if r['j'] == j]
        return f'{hit[0]:.3f}' if hit else ''

    for j in range(2, max_j + 1):
        prev = 't1' if j == 2 else f't1..t{j - 1}'
        lines.append(f'| R^2(t{j}; {prev}) | ' + ' | '.join(cell(c, j) for c in columns) + ' |')
    fmt = (lambda v: '' if v is None else f'**{v:.3f}**')

    def averages(key):
        return ' | '.join(fmt(results[c][estimator][key]) if estimator in results[c] else '' for c in columns)

    lines.append('| average j = 2..4 | ' + averages('average_j2_4') + ' |')
    if max_j > 4:
        lines.append('| average j = 2..N | ' + averages('average') + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    prepare(plots=True)  # figures to files, whatever display there is
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    sides, omegas = cutoffs(args, args.image_size)
    for spec in args.tokenizer:  # every setting is checked before the first figure is written
        model_type = load_config(spec[0]).model.get('type')
        if model_type != 'TokenizerModel':
            raise SystemExit(f'--tokenizer {spec[0]} is not a tokenizer config (model.type={model_type!r}).')
    os.makedirs(args.out_dir, exist_ok=True)
    estimators = ['best1'] if args.no_pca else ['best1', 'pca']
    start = time.time()
    # (B, 3, S, S) in [0, 1]
    images = load_images(args.num_images, args.image_size, args.seed, args.image_dir, args.class_set)
    train_idx, test_idx = split_indices(len(images), args.train_fraction, args.split_seed)
    stride = max(1, args.image_size // args.grid)
    if args.pca_dim is None:
        # Few regressors per fitted image, so that the held-out R^2 is not mostly overfitting.
        args.pca_dim = max(1, min(128, len(train_idx) // 8))
    source = args.image_dir or f'EmbeddedShapes seed {args.seed}'
    print(f'{len(images)} images ({source}) at {args.image_size} px: fit on {len(train_idx)}, test on '
          f'{len(test_idx)}; scale sides {sides}, DCT cut-offs {omegas}; '
          f'elements: luminance every {stride} px; least squares on at most {args.pca_dim} principal axes',
          flush=True)

    results, settings = {}, dict(vars(args), scale_sides=sides, omegas=omegas, element_stride=stride,
                                 num_train=len(train_idx), num_test=len(test_idx), command=' '.join(sys.argv))
    # Every sequence is built by per-channel linear maps, so building it from the luminance image gives
    # exactly the luminance of its tokens, with a third of the memory.
    luminance = images.mean(1, keepdim=True)  # (B, 1, S, S)
    for name in args.sequences:
        tokens, offsets = image_sequence(name, luminance, sides, omegas)
        elements = luminance_elements(tokens, stride)
        del tokens
        best = best_single_r2(elements, train_idx, test_idx)
        results[name] = dict(best1=summarise(best))
        if 'pca' in estimators:
            results[name]['pca'] = summarise(sequence_r2(elements, train_idx, test_idx, args.pca_dim))
        grid = -(-args.image_size // stride)
        maps = frame_maps(best, [tuple(e.shape[1:]) for e in elements],
                          [(oy // stride, ox // stride) for oy, ox in offsets], (grid, grid))
        results[name]['best_source_counts'] = [
            np.bincount(r['source_token'].numpy(), minlength=r['j'] - 1).tolist() for r in best]
        fig = image_figure(name, maps, f'{len(images)} images, {args.image_size} px')
        fig.savefig(osp.join(args.out_dir, f'causality_{name}.png'), dpi=100)
        plt.close(fig)
        print(f'{name}: ' + ', '.join(f'{e} {results[name][e]["average"]:.3f}' for e in estimators) +
              f'  ({time.time() - start:.0f} s)', flush=True)

    for spec in args.tokenizer:
        config, checkpoint = spec[:2]
        name = spec[2] if len(spec) == 3 else osp.splitext(osp.basename(config))[0]
        cfg = load_config(config)
        if cfg.model.get('type') != 'TokenizerModel':
            raise ValueError(f'{config} is not a tokenizer config (model.type={cfg.model.get("type")!r}).')
        tokenizer = load_tokenizer(settle_value_range(cfg.model)['tokenizer'], checkpoint, device=args.device)
        value_range = tokenizer.value_range
        size = tokenizer.image_size
        tok_images = images if size == args.image_size else load_images(args.num_images, size, args.seed,
                                                                        args.image_dir, args.class_set)
        tokens = encode_learned_tokens(tokenizer, tok_images, value_range, args.token_space, args.batch_size)
        best = best_single_r2(tokens, train_idx, test_idx)
        entry = dict(best1=summarise(best), config=config, checkpoint=checkpoint,
                     type=type(tokenizer).__name__, num_tokens=len(tokens), token_dim=int(tokens[0].shape[1]),
                     space=args.token_space)
        if 'pca' in estimators:
            entry['pca'] = summarise(sequence_r2(tokens, train_idx, test_idx, args.pca_dim))
        pair = pairwise_r2(tokens, train_idx, test_idx, args.pca_dim)
        share = np.full_like(pair, np.nan)
        for r in best:
            share[r['j'] - 1, :r['j'] - 1] = np.bincount(r['source_token'].numpy(), minlength=r['j'] - 1) / \
                len(r['source_token'])
        entry['pairwise_r2'] = [[None if np.isnan(v) else float(v) for v in row] for row in pair]
        entry['best_source_share'] = [[None if np.isnan(v) else float(v) for v in row] for row in share]
        results[f'learned: {name}'] = entry
        fig = learned_figure(name, pair, share, f'{type(tokenizer).__name__}, {args.token_space} tokens, '
                             f'{len(images)} images')
        fig.savefig(osp.join(args.out_dir, f'causality_learned_{name}.png'), dpi=100)
        plt.close(fig)
        print(f'learned {name}: ' + ', '.join(f'{e} {entry[e]["average"]:.3f}' for e in estimators) +
              f'  ({time.time() - start:.0f} s)', flush=True)

    columns = list(results)
    max_j = max(r['j'] for c in columns for r in results[c]['best1']['rows'])
    parts = [f'# Causality of token sequences\n\n{len(images)} images ({source}) at {args.image_size} px, '
             f'fitted on {len(train_idx)}, R^2 on the other {len(test_idx)}; scale sides {sides}, '
             f'DCT cut-offs {omegas}; elements: luminance pixels every {stride} px; '
             f'learned tokens: {args.token_space}.\n']
    for est in estimators:
        label = ESTIMATORS[est].format(d=args.pca_dim)
        parts.append(f'## R^2 with the {label}\n\n' + markdown_table(results, est, columns, max_j) + '\n')
    parts.append('Paper (Table 1, ImageNet): raster ' + ' / '.join(map(str, PAPER['raster'])) +
                 ', scale-wise ' + ' / '.join(map(str, PAPER['scale'])) +
                 ', spectral ' + ' / '.join(map(str, PAPER['spectral'])) + ' (j = 2, 3, 4, average).\n')
    text = '\n'.join(parts)
    print('\n' + text)
    with open(osp.join(args.out_dir, 'causality.md'), 'w') as f:
        f.write(text)
    write_json(osp.join(args.out_dir, 'causality.json'), dict(settings=settings, results=results, paper=PAPER,
                                                              seconds=time.time() - start))
    print(f'wrote {args.out_dir}/causality.md, causality.json and the PNGs ({time.time() - start:.0f} s)')


if __name__ == '__main__':
    main()
