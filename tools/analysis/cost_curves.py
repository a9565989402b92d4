"""How the cost grows with the work: sampling against tokens and batch, the tokenizer against resolution.

    python tools/analysis/cost_curves.py [--tokens 64 128 256] [--batch-sizes 1 8 32] [--dtype fp32]
        [--resolutions 128 256 512] [--tokenizer-batch 2] [--repeats 1] [--out work_dirs/cost_curves]

1. Sampling (random SpectralAR-d16 weights, 4096 codes, cfg 1.5 with the linear ramp, top-k 900, top-p 0.96,
   KV cache): seconds per image for every N in ``--tokens`` and B in ``--batch-sizes``, beside two floors
   measured on this machine: reading every weight once per step at the sampler's streaming rate
   (``steps * weight bytes / bandwidth / B``) and doing the step's FLOPs at matmul peak. The first falls as
   1/B and grows as N (one step per token); the second does not depend on B and grows as N plus the attention
   over the cache (N^2).
2. The B-64-style nested spectral tokenizer (ViT-B encoder and decoder, patch 16, 64 tokens, the pixel recipe)
   at every resolution in ``--resolutions``: encode, decode_tokens and a training step (forward, backward,
   AdamW) in seconds per image, batch ``--tokenizer-batch``. (Eq. 9 cannot place 64 tokens at 128 px; that
   point uses the uniform schedule, which costs the same.) The patch count grows as the square of the
   resolution; attention over the patches as its fourth power.

Writes ``cost_curves.png`` (both panels, log-log), ``cost_curves.md`` and ``cost_curves.json`` to ``--out``.
Waits for an idle machine before each figure and reports the CPU time other processes took.
"""
import argparse
import os.path as osp

import torch

from mmspectral.analysis.speed import (announce_cpu, matmul_peak, measure, sampling_flops, step_weight_bytes,
                                       stream_bandwidth, time_sampling, wait_until_idle)
from mmspectral.apis import register_all_modules
from mmspectral.cli import output_folder, positive_int
from mmspectral.fileio import write_report
from mmspectral.models import SpectralARGenerator, TokenizerModel


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tokens', nargs='+', type=positive_int, default=[64, 128, 256])
    parser.add_argument('--batch-sizes', nargs='+', type=positive_int, default=[1, 8, 32])
    parser.add_argument('--dtype', choices=['fp32', 'bf16'], default='fp32')
    parser.add_argument('--depth', type=positive_int, default=16)
    parser.add_argument('--resolutions', nargs='+', type=positive_int, default=[128, 256, 512])
    parser.add_argument('--tokenizer-batch', type=positive_int, default=2)
    parser.add_argument('--tokenizer-width', type=positive_int, default=None,
                        help='override ViT-B\'s 768 (smoke tests)')
    parser.add_argument('--tokenizer-depth', type=positive_int, default=None, help='override ViT-B\'s 12')
    parser.add_argument('--repeats', type=positive_int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--no-wait', action='store_true')
    parser.add_argument('--skip-sampling', action='store_true')
    parser.add_argument('--skip-tokenizer', action='store_true')
    parser.add_argument('--out', type=output_folder, default='work_dirs/cost_curves')
    return parser.parse_args(argv)


def sampling_curve(args, device) -> list:
    bf16 = args.dtype == 'bf16'
    dtype = torch.bfloat16 if bf16 else torch.float32
    peak, bandwidth = matmul_peak(device, dtype), stream_bandwidth(device, dtype)
    rows = []
    for n in args.tokens:
        torch.manual_seed(0)
        model = SpectralARGenerator(vocab_size=4096, num_tokens=n, num_classes=1000,
                                    depth=args.depth).to(device).eval()
        for b in args.batch_sizes:
            if not args.no_wait and device.type == 'cpu':
                wait_until_idle()
            labels = torch.randint(0, 1000, (b,), device=device)
            options = dict(cfg_scale=1.5, cfg_schedule='linear', top_k=900, top_p=0.96, seed=0)
            seconds, _, foreign = time_sampling(model, labels, options, bf16, args.repeats, device)
            flops = sampling_flops(model, b, True, True)
            stream = n * step_weight_bytes(model, 2 if bf16 else 4) / bandwidth / 1e9 / b
            compute = flops / peak / 1e9 / b
            rows.append(dict(tokens=n, batch=b, seconds_per_image=seconds / b, stream_floor=stream,
                             compute_floor=compute, gflop_per_image=flops / b / 1e9, foreign_cpu_s=foreign))
            print(f'sampling N={n} B={b}: {seconds / b:.3f} s / image (floors: streaming {stream:.3f}, '
                  f'compute {compute:.3f})', flush=True)
        model.release_packed_weights()
        del model
    return [dict(matmul_peak_gflops=peak, bandwidth_gbs=bandwidth)] + rows


def tokenizer_curve(args, device) -> list:
    rows = []
    b = args.tokenizer_batch
    for size in args.resolutions:
        torch.manual_seed(0)
        arch = {k: v for k, v in (('width', args.tokenizer_width), ('depth', args.tokenizer_depth)) if v}
        if 'width' in arch:
            arch['num_heads'] = max(1, arch['width'] // 64)
        tokenizer = dict(type='NestedSpectralTokenizer', arch='B', image_size=size, patch_size=16,
                         num_tokens=64, codebook_size=4096, token_size=12, **arch)
        try:
            model = TokenizerModel(tokenizer=tokenizer).to(device)
        except ValueError as exc:  # eq. 9 cannot place 64 tokens below 256 px; the cost does not depend on it
            print(f'{size} px: {exc} -> the uniform schedule for this point', flush=True)
            tokenizer['freq_schedule'] = dict(type='UniformFreqSchedule')
            model = TokenizerModel(tokenizer=tokenizer).to(device)
        tok = model.tokenizer
        torch.manual_seed(0)
        images = torch.rand(b, 3, size, size, device=device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        with torch.no_grad():
            tokens = tok.encode(images)

        def step():
            losses = model.autoencoder_losses(images)
            sum(v for k, v in losses.items() if k.startswith('loss_')).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        def encode():
            with torch.no_grad():
                tok.encode(images)

        def decode():
            with torch.no_grad():
                tok.decode_tokens(tokens)

        row = dict(resolution=size, patches=(size // 16) ** 2, batch=b)
        for name, fn in (('encode', encode), ('decode', decode), ('train_step', step)):
            if not args.no_wait and device.type == 'cpu':
                wait_until_idle()
            result = measure(fn, args.repeats, device)
            row[name] = result['seconds'] / b
            row[f'{name}_foreign_cpu_s'] = result['foreign_cpu_s']
        rows.append(row)
        print(f'tokenizer {size} px: encode {row["encode"]:.3f}, decode {row["decode"]:.3f}, train step '
              f'{row["train_step"]:.3f} s / image', flush=True)
    return rows


def plot(sampling, tokenizer, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = int(bool(sampling)) + int(bool(tokenizer))
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    axes = list(axes[0])
    if sampling:
        ax = axes.pop(0)
        rows = sampling[1:]
        for b in sorted({r['batch'] for r in rows}):
            sel = [r for r in rows if r['batch'] == b]
            n = [r['tokens'] for r in sel]
            line, = ax.plot(n, [r['seconds_per_image'] for r in sel], 'o-', label=f'B = {b} measured')
            ax.plot(n, [r['stream_floor'] for r in sel], ':', color=line.get_color(),
                    label=f'B = {b} weight-streaming floor')
        sel = [r for r in rows if r['batch'] == rows[0]['batch']]
        ax.plot([r['tokens'] for r in sel], [r['compute_floor'] for r in sel], 'k--',
                label='matmul-peak floor (any B)')
        ax.set(xscale='log', yscale='log', xlabel='tokens per image N', ylabel='seconds per image',
               title='sampling, d16, cfg 1.5, KV cache')
        ax.set_xticks([r['tokens'] for r in sel], [str(r['tokens']) for r in sel])
        ax.legend(fontsize=7)
    if tokenizer:
        ax = axes.pop(0)
        res = [r['resolution'] for r in tokenizer]
        for name in ('encode', 'decode', 'train_step'):
            ax.plot(res, [r[name] for r in tokenizer], 'o-', label=name.replace('_', ' '))
        ax.set(xscale='log', yscale='log', xlabel='resolution (px)', ylabel='seconds per image',
               title='nested spectral tokenizer, ViT-B, patch 16, 64 tokens')
        ax.set_xticks(res, [str(r) for r in res])
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def to_markdown(sampling, tokenizer) -> str:
    lines = []
    if sampling:
        machine = sampling[0]
        lines += [f"matmul peak {machine['matmul_peak_gflops']:.0f} GFLOP/s, weight streaming "
                  f"{machine['bandwidth_gbs']:.1f} GB/s", '',
                  '| tokens N | batch | s / image | weight-streaming floor | matmul-peak floor | '
                  'GFLOP / image |',
                  '|---|---|---|---|---|---|']
        lines += [f"| {r['tokens']} | {r['batch']} | {r['seconds_per_image']:.3f} | "
                  f"{r['stream_floor']:.3f} | {r['compute_floor']:.3f} | {r['gflop_per_image']:.1f} |"
                  for r in sampling[1:]]
        lines.append('')
    if tokenizer:
        lines += ['| resolution | patches | encode s / image | decode s / image | train step s / image |',
                  '|---|---|---|---|---|']
        lines += [f"| {r['resolution']} | {r['patches']} | {r['encode']:.3f} | {r['decode']:.3f} | "
                  f"{r['train_step']:.3f} |" for r in tokenizer]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> dict:
    args = parse_args(argv)
    register_all_modules()
    device = torch.device(args.device)
    cpu, skip = announce_cpu(device, args.dtype == 'bf16')
    if skip:
        return dict(dtype=args.dtype, skipped=skip, cpu=cpu)
    sampling = [] if args.skip_sampling else sampling_curve(args, device)
    tokenizer = [] if args.skip_tokenizer else tokenizer_curve(args, device)
    table = to_markdown(sampling, tokenizer)
    print(table)
    result = dict(dtype=args.dtype, threads=torch.get_num_threads(), cpu=cpu, sampling=sampling,
                  tokenizer=tokenizer)
    write_report(args.out, 'cost_curves', table, result)
    plot(sampling, tokenizer, osp.join(args.out, 'cost_curves.png'))
    return result


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
