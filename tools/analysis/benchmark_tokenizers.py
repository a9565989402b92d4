"""Throughput and memory of the TiTok tokenizer vs the nested spectral tokenizer at the same size.

    python tools/analysis/benchmark_tokenizers.py [--arch B] [--image-size 256] [--patch-size 16]
        [--num-tokens 64] [--batch-size 8] [--iters 5] [--device cpu|cuda] [--amp]

Measures, for each tokenizer: a full training step (forward, backward, AdamW update, as TokenizerModel runs it
with the 'pixel' recipe), encode, and decode_tokens; median seconds, images per second and peak memory (CUDA:
max_memory_allocated per operation; CPU: the peak RSS of a fresh process that measures one tokenizer, model
and framework included). It also times the spectral extras alone: the per-sample low-pass targets and the
per-sample attention masks. Timings wait for an idle machine first and report the CPU time other processes
used meanwhile (a busy machine makes CPU timings meaningless).
"""
import argparse
import multiprocessing

from mmspectral.cli import positive_int
from mmspectral.launch import prepare


def build(kind: str, args, device):
    import torch

    from mmspectral.models import TokenizerModel
    common = dict(arch=args.arch, image_size=args.image_size, patch_size=args.patch_size,
                  num_tokens=args.num_tokens, codebook_size=4096, token_size=12)
    if kind == 'TiTok':
        tokenizer = dict(type='TiTokTokenizer', **common)
    else:
        tokenizer = dict(type='NestedSpectralTokenizer', **common)
    torch.manual_seed(0)
    return TokenizerModel(tokenizer=tokenizer).to(device)


def measure_tokenizer(kind: str, options: dict) -> dict:
    """All measurements of one tokenizer (run in a child process)."""
    import torch

    from mmspectral.analysis.speed import measure
    from mmspectral.apis import register_all_modules
    args = argparse.Namespace(**options)
    register_all_modules()
    device = torch.device(args.device)
    b = args.batch_size
    torch.manual_seed(0)
    images = torch.rand(b, 3, args.image_size, args.image_size, device=device)
    dtype = torch.bfloat16 if args.amp else None
    model = build(kind, args, device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tok = model.tokenizer
    tokens = tok.encode(images)

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def step():
        with autocast():
            losses = model.autoencoder_losses(images)
        loss = sum(v for k, v in losses.items() if k.startswith('loss_'))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def encode():
        with autocast():
            tok.encode(images)

    def decode():
        with autocast():
            tok.decode_tokens(tokens)

    rows = {kind: {name: measure(fn, args.iters, device) for name, fn in
                   (('train step', step), ('encode', encode), ('decode_tokens', decode))}}
    if kind == 'SpectralAR':
        k = tok.sample_prefix_lengths(b, device)
        rows['spectral extras'] = {
            'low-pass targets': measure(lambda: tok.target(images, k), args.iters, device),
            'per-sample decoder mask': measure(
                lambda: tok.attn_mask(tok.num_tokens, tok.decoder.num_context, 'decoder', k),
                args.iters, device),
        }
    return rows


def main():
    # Before torch loads: the figures in docs/results.md were measured under the passive OpenMP policy, in
    # this process and the children that inherit it.
    prepare(passive=True)
    import torch

    from mmspectral.analysis.speed import wait_until_idle
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='B')
    parser.add_argument('--image-size', type=positive_int, default=256)
    parser.add_argument('--patch-size', type=positive_int, default=16)
    parser.add_argument('--num-tokens', type=positive_int, default=64)
    parser.add_argument('--batch-size', type=positive_int, default=8)
    parser.add_argument('--iters', type=positive_int, default=5)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast')
    parser.add_argument('--no-wait', action='store_true', help='do not wait for an idle machine')
    args = parser.parse_args()
    device = torch.device(args.device)
    b = args.batch_size
    from mmspectral.analysis.speed import announce_cpu
    if announce_cpu(device, args.amp)[1]:
        return
    print(f'# {args.arch}, {args.image_size}px, patch {args.patch_size}, {args.num_tokens} tokens, '
          f'batch {b}, {device}, {"bf16 autocast" if args.amp else "fp32"}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads')
    rows = {}
    from mmspectral.allocator import freed_memory_kept, keep_freed_memory
    context = multiprocessing.get_context('spawn')
    for kind in ('TiTok', 'SpectralAR'):
        if not args.no_wait and device.type == 'cpu':
            wait_until_idle()
        # a fresh process per tokenizer (separate peak memory), with this process's malloc setting
        with context.Pool(1, initializer=keep_freed_memory if freed_memory_kept() else None) as pool:
            rows.update(pool.apply(measure_tokenizer, (kind, vars(args))))
    print('| tokenizer | operation | s / batch | images / s | peak MiB | foreign CPU s |')
    print('|---|---|---|---|---|---|')
    for kind, ops in rows.items():
        for name, r in ops.items():
            print(f'| {kind} | {name} | {r["seconds"]:.4f} | {b / r["seconds"]:.1f} | {r["peak_mib"]:.0f} | '
                  f'{r["foreign_cpu_s"]:.1f} |')
    overhead = rows['SpectralAR']['train step']['seconds'] / rows['TiTok']['train step']['seconds'] - 1
    print(f'\nSpectral training-step overhead over TiTok: {100 * overhead:+.1f}% (target: at most +5%)')


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
