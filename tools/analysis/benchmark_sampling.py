"""Sampling speed of SpectralAR generators: images per second, memory, and achieved GFLOP/s.

    python tools/analysis/benchmark_sampling.py [--presets d16 d16-p4] [--batch-sizes 1 8 32]
        [--dtypes fp32 bf16] [--bf16-mode weights|autocast] [--uncached-batch-sizes 1]
        [--ratio-batch-sizes 1 8] [--device cpu|cuda]

Random weights (speed does not depend on them), ImageNet sizes (4096 codes, 64 tokens, 1000 classes), the
paper's sampling settings (cfg 1.5 with VAR's linear ramp, top-k 900, top-p 0.96). The transformer alone is
timed: decoding tokens to pixels is the tokenizer's cost and is measured by benchmark_tokenizers.py. Each
figure is the median of ``--repeats`` runs after a warm-up, on an idle machine (the script waits for one and
reports the CPU time other processes used). FLOPs are counted for the work really done: per generated
position, the transformer's matmuls for every row of the (doubled, with guidance) batch, attention over the
cached length, the output head; the AdaLN projections once per image; uncached sampling recomputes every
earlier position.

bf16 means a bf16 copy of the generator by default (``--bf16-mode weights``: weights, activations and KV cache
in bf16; on the CPU its linears run on oneDNN-packed bf16 weights); ``--bf16-mode autocast`` samples with the
fp32 model under autocast instead. With both dtypes, d16 then alternates fp32 and bf16 in one loop at
``--ratio-batch-sizes`` and prints bf16 / fp32 and whether the bf16 tokens equal those of the bf16 reference
path (the same bf16 model on the default kernels, ``pack_weights=False``).
"""
import argparse
import copy
import statistics
from functools import partial

import torch

from mmspectral.analysis.speed import (announce_cpu, matmul_peak, measure_alternating, sampling_flops,
                                       step_weight_bytes, stream_bandwidth, time_sampling, wait_until_idle)
from mmspectral.apis import register_all_modules
from mmspectral.cli import positive_int
from mmspectral.models import SpectralARGenerator
from mmspectral.models.generators import generate_tokens

PRESETS = {'d16': dict(depth=16),
           'd16-p4': dict(depth=16, attn_mask=dict(type='BlockCausalMask', block_size=4)),
           'd20': dict(depth=20), 'd24': dict(depth=24), 'd30': dict(depth=30)}


def for_dtype(model, dtype: str, bf16_mode: str = 'weights'):
    """(the model to sample with, whether to autocast) for 'fp32' or 'bf16'.

    bf16 'weights': a bf16 copy of the generator (weights, activations and the KV cache in bf16, no casts in
    the step); 'autocast': the fp32 model under CPU / CUDA autocast to bf16.
    """
    if dtype == 'fp32':
        return model, False
    if bf16_mode == 'autocast':
        return model, True
    return copy.deepcopy(model).to(torch.bfloat16), False


def dtype_ratio(models: dict, batch: int, repeats: int, device) -> dict:
    """fp32 and bf16 ``generate`` alternating in one loop (median seconds per image of each, bf16 / fp32),
    and whether bf16 sampling gives the tokens of the bf16 reference path (default kernels, no packing).

    ``models``: 'fp32' and 'bf16' -> (model, autocast), as :func:`for_dtype` gives them.
    """
    labels = torch.randint(0, 1000, (batch,), device=device)
    options = dict(cfg_scale=1.5, cfg_schedule='linear', top_k=900, top_p=0.96, seed=0)

    def sample(dt, **kwargs):
        model, autocast = models[dt]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            return generate_tokens(model, labels, **options, **kwargs)

    # the warm-up also makes the packed copies of each dtype
    seconds, _ = measure_alternating({dt: partial(sample, dt) for dt in models}, repeats, device)
    same = torch.equal(sample('bf16'), sample('bf16', pack_weights=False))
    fp32, bf16 = (statistics.median(seconds[dt]) / batch for dt in ('fp32', 'bf16'))
    return dict(fp32=fp32, bf16=bf16, ratio=bf16 / fp32, tokens_equal_reference=same)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--presets', nargs='+', default=['d16', 'd16-p4'], choices=sorted(PRESETS))
    parser.add_argument('--batch-sizes', nargs='+', type=positive_int, default=[1, 8, 32])
    parser.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16'])
    parser.add_argument('--bf16-mode', choices=['weights', 'autocast'], default='weights',
                        help='bf16 as a bf16 copy of the generator (default) or as autocast of the fp32 one')
    parser.add_argument('--uncached-batch-sizes', nargs='*', type=positive_int, default=[1],
                        help='batch sizes also timed without the KV cache (slow)')
    parser.add_argument('--no-cfg', action='store_true', help='also time sampling without guidance')
    parser.add_argument('--repeats', type=positive_int, default=3)
    parser.add_argument('--ratio-batch-sizes', nargs='*', type=positive_int, default=[1, 8],
                        help='batch sizes at which d16 alternates fp32 and bf16 in one loop (bf16 / fp32 '
                             'ratio, and bf16 tokens against the bf16 reference path); empty to skip')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--no-wait', action='store_true')
    args = parser.parse_args(argv)
    register_all_modules()
    device = torch.device(args.device)
    torch.manual_seed(0)
    _, skip = announce_cpu(device, 'bf16' in args.dtypes)
    if skip:
        args.dtypes = [dt for dt in args.dtypes if dt != 'bf16']
        if not args.dtypes:
            return {}
    dtypes = {dt: torch.float32 if dt == 'fp32' else torch.bfloat16 for dt in args.dtypes}
    peaks = {dt: matmul_peak(device, dtype) for dt, dtype in dtypes.items()}
    bandwidth = {dt: stream_bandwidth(device, dtype) for dt, dtype in dtypes.items()}
    print(f'# {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak '
          + ', '.join(f'{dt} {peak:.0f} GFLOP/s' for dt, peak in peaks.items()) + '; weight streaming '
          + ', '.join(f'{dt} {bw:.1f} GB/s' for dt, bw in bandwidth.items()))
    print('| model | dtype | batch | cache | cfg | s / image | images / s | GFLOP / image | GFLOP/s | '
          '% peak | floor s / image | peak MiB | foreign CPU s |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    results = {}
    for preset in args.presets:
        model = SpectralARGenerator(vocab_size=4096, num_tokens=64, num_classes=1000,
                                    **PRESETS[preset]).to(device).eval()
        for dt in args.dtypes:
            sampler, autocast = for_dtype(model, dt, args.bf16_mode)
            for batch in args.batch_sizes:
                cases = [(True, True)]
                if args.no_cfg:
                    cases.append((True, False))
                if batch in args.uncached_batch_sizes:
                    cases.append((False, True))
                for cached, guided in cases:
                    if not args.no_wait and device.type == 'cpu':
                        wait_until_idle()
                    labels = torch.randint(0, 1000, (batch,), device=device)
                    options = dict(cfg_scale=1.5 if guided else 0.0, cfg_schedule='linear', top_k=900,
                                   top_p=0.96, use_cache=cached, seed=0)
                    seconds, peak_mib, foreign = time_sampling(sampler, labels, options, autocast,
                                                               args.repeats, device)
                    flops = sampling_flops(model, batch, guided, cached) / batch
                    rate = flops / (seconds / batch) / 1e9
                    # The slower of reading the weights once per step and doing the FLOPs at matmul peak.
                    steps = model.num_tokens // model.block_size
                    floor = max(
                        steps * step_weight_bytes(model, 4 if dt == 'fp32' else 2) / bandwidth[dt] / 1e9,
                        flops * batch / peaks[dt] / 1e9) / batch
                    results[(preset, dt, batch, cached, guided)] = seconds / batch
                    print(f'| {preset} | {dt} | {batch} | {"yes" if cached else "no"} | '
                          f'{1.5 if guided else 0} | {seconds / batch:.3f} | {batch / seconds:.2f} | '
                          f'{flops / 1e9:.1f} | {rate:.0f} | {100 * rate / peaks[dt]:.0f}% | {floor:.3f} | '
                          f'{peak_mib:.0f} | {foreign:.1f} |', flush=True)
            del sampler
        del model
    print()
    if set(args.dtypes) == {'fp32', 'bf16'} and args.ratio_batch_sizes:
        model = SpectralARGenerator(vocab_size=4096, num_tokens=64, num_classes=1000,
                                    **PRESETS['d16']).to(device).eval()
        models = {dt: for_dtype(model, dt, args.bf16_mode) for dt in ('fp32', 'bf16')}
        print(f'd16, fp32 and bf16 ({args.bf16_mode}) alternating in one loop (median of '
              f'{args.repeats}; target bf16 <= 0.6x fp32):')
        for batch in args.ratio_batch_sizes:
            if not args.no_wait and device.type == 'cpu':
                wait_until_idle()
            r = dtype_ratio(models, batch, args.repeats, device)
            print(f'  B={batch}: fp32 {r["fp32"]:.3f} s / image, bf16 {r["bf16"]:.3f} s / image, '
                  f'bf16 / fp32 {r["ratio"]:.2f}x; bf16 tokens equal the bf16 reference path: '
                  f'{r["tokens_equal_reference"]}', flush=True)
        del model, models
    for dt in args.dtypes:
        for batch in args.uncached_batch_sizes:
            key = ('d16', dt, batch, True, True)
            if key in results and ('d16', dt, batch, False, True) in results:
                print(f'{dt}: KV cache speed-up at d16, B={batch}: '
                      f'{results[("d16", dt, batch, False, True)] / results[key]:.1f}x (target >= 10x)')
        key = ('d16', dt, 1, True, True)
        if key in results and ('d16-p4', dt, 1, True, True) in results:
            print(f'{dt}: d16-p4 over d16 at B=1: '
                  f'{results[key] / results[("d16-p4", dt, 1, True, True)]:.1f}x (target >= 3x)')


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
