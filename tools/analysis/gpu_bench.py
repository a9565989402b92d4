"""The figures of the GPU check: training, sampling and decoding throughput at ImageNet sizes on one GPU.

    python tools/analysis/gpu_bench.py [--report gpu_tests_report.json] [--out table.md] [--dry-run]

Random weights (speed does not depend on them), bf16 autocast, each figure the median of a few timed runs
after a warm-up (``torch.cuda.synchronize`` around each):

* tokenizer B-64 training step (forward, backward, AdamW; TiTok and the nested spectral tokenizer) at batch
  32: images / s and peak memory;
* generator d16 training step at batch 96: images / s and peak memory;
* sampling at batch 256 with the paper's settings (cfg 1.5 with VAR's ramp, top-k 900, top-p 0.96) for d16 and
  d16-p4: images / s (tokens only; decoding is the next line);
* decoding 64 tokens to 256 px images with the B-64 tokenizer at batch 64: images / s;
* the attention kernels each mask can use, read from the gpu tests' report (``--report``).

Without CUDA (or with ``--dry-run``) every line is printed as skipped, so the table's shape can be checked on
any machine.
"""
import argparse
import json
import os.path as osp
import statistics
import time

import torch

from mmspectral.apis import register_all_modules
from mmspectral.cli import existing_file, output_file
from mmspectral.models import SpectralARGenerator, TokenizerModel

SAMPLING = dict(cfg_scale=1.5, cfg_schedule='linear', top_k=900, top_p=0.96)
B64 = dict(arch='B', image_size=256, patch_size=16, num_tokens=64, codebook_size=4096, token_size=12)


def timed(fn, repeats: int = 3) -> float:
    """Median seconds of ``fn`` after one warm-up call, synchronised on CUDA."""
    fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_mib(fn) -> float:
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2 ** 20


def autocast():
    return torch.autocast('cuda', dtype=torch.bfloat16)


def tokenizer_training(kind: str, batch: int = 32):
    torch.manual_seed(0)
    tokenizer = dict(type=kind, **B64)
    if kind == 'NestedSpectralTokenizer':
        tokenizer.update(freq_schedule=dict(type='NonUniformFreqSchedule'),
                         prefix_sampling=dict(distribution='uniform'))
    model = TokenizerModel(tokenizer=tokenizer).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    images = torch.rand(batch, 3, 256, 256, device='cuda')

    def step():
        with autocast():
            losses = model(images, mode='loss')
        sum(v for k, v in losses.items() if k.startswith('loss_')).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = timed(step)
    return dict(images_per_s=batch / seconds, peak_mib=peak_mib(step))


def generator_training(batch: int = 96):
    torch.manual_seed(0)
    gen = SpectralARGenerator.from_preset('d16', vocab_size=4096, num_tokens=64,
                                          num_classes=1000).cuda().train()
    opt = torch.optim.AdamW(gen.parameters(), lr=1e-4, fused=True)
    tokens = torch.randint(0, 4096, (batch, 64), device='cuda')
    labels = torch.randint(0, 1000, (batch,), device='cuda')

    def step():
        with autocast():
            logits = gen(tokens, labels)
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = timed(step)
    return dict(images_per_s=batch / seconds, peak_mib=peak_mib(step))


def sampling(preset: str, batch: int = 256):
    torch.manual_seed(0)
    mask = dict(type='BlockCausalMask', block_size=4) if preset == 'd16-p4' else None
    gen = SpectralARGenerator.from_preset('d16', vocab_size=4096, num_tokens=64, num_classes=1000,
                                          attn_mask=mask).cuda().eval()
    labels = torch.randint(0, 1000, (batch,), device='cuda')
    generator = torch.Generator(device='cuda').manual_seed(0)

    def run():
        with autocast():
            gen.generate(labels, rng=generator, **SAMPLING)
    seconds = timed(run, repeats=2)
    return dict(images_per_s=batch / seconds, peak_mib=peak_mib(run))


def decoding(batch: int = 64):
    torch.manual_seed(0)
    model = TokenizerModel(tokenizer=dict(type='NestedSpectralTokenizer', **B64,
                                          freq_schedule=dict(type='NonUniformFreqSchedule'))).cuda().eval()
    tokens = torch.randint(0, 4096, (batch, 64), device='cuda')

    def run():
        with torch.no_grad(), autocast():
            model.tok.decode_tokens(tokens)
    seconds = timed(run)
    return dict(images_per_s=batch / seconds, peak_mib=peak_mib(run))


LINES = (
    ('tokenizer B-64 (TiTok) training, bf16, batch 32', lambda: tokenizer_training('TiTokTokenizer')),
    ('tokenizer B-64 (nested spectral) training, bf16, batch 32',
     lambda: tokenizer_training('NestedSpectralTokenizer')),
    ('generator d16 training, bf16, batch 96', generator_training),
    ('sampling d16, bf16, batch 256, cfg 1.5, top-k 900, top-p 0.96', lambda: sampling('d16')),
    ('sampling d16-p4, bf16, batch 256, cfg 1.5, top-k 900, top-p 0.96', lambda: sampling('d16-p4')),
    ('decoding 64 tokens -> 256 px (B-64), bf16, batch 64', decoding),
)


def attention_lines(report: str):
    if not report or not osp.isfile(report):
        return [('attention kernels', f'skipped (no gpu tests report {report or ""})')]
    with open(report) as f:
        data = json.load(f)
    rows = []
    for key in sorted(k for k in data if k.startswith('attention/')):
        entry = data[key]
        text = ('SDPA: ' + ', '.join(entry.get('backends', []))
                + ('' if entry.get('dense_mask') else ' (no mask)'))
        if 'is_causal_backends' in entry:
            text += '; is_causal: ' + ', '.join(entry['is_causal_backends'])
        rows.append((key, text + f"; flex_attention: {entry.get('flex_attention', '?')}"))
    for key in sorted(k for k in data if not k.startswith('attention/')):
        rows.append((key, str(data[key])))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--report', type=existing_file, default=None,
                        help="the gpu tests' JSON report (MMSPECTRAL_GPU_REPORT)")
    parser.add_argument('--out', type=output_file, default=None, help='also write the table (markdown) here')
    parser.add_argument('--dry-run', action='store_true', help='print the table with every line skipped')
    args = parser.parse_args(argv)
    register_all_modules()
    cuda = torch.cuda.is_available() and not args.dry_run
    device = torch.cuda.get_device_name() if cuda else 'no CUDA device'
    lines = [f'# GPU check: {device}, torch {torch.__version__}', '',
             '| measurement | images / s | peak MiB |', '|---|---|---|']
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    for name, fn in LINES:
        if not cuda:
            lines.append(f'| {name} | skipped (no CUDA) | |')
            continue
        try:
            result = fn()
            lines.append(f"| {name} | {result['images_per_s']:.1f} | {result['peak_mib']:.0f} |")
        except Exception as exc:  # noqa: BLE001 - a failed line is reported, the others still run
            lines.append(f'| {name} | failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]} | |')
        torch.cuda.empty_cache()
    lines += ['', '| recorded by the gpu tests | value |', '|---|---|']
    lines += [f'| {key} | {value} |' for key, value in attention_lines(args.report)]
    table = '\n'.join(lines) + '\n'
    print(table, flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table)
    return table


if __name__ == '__main__':
    main()
