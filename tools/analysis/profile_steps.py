"""Where a training step's time goes: the quick start's tokenizer and generator steps under torch.profiler,
with their FLOPs and the share of this CPU's fp32 matmul peak they reach (issue 31).

    python tools/analysis/profile_steps.py [--which tokenizer generator] [--iters 20] [--top 15]
        [--tokenizer-options KEY=VALUE ...] [--generator-options KEY=VALUE ...] [--out profile.json]

Each step is the model's own: ``train_step`` (data preprocessing, forward, backward, the optimizer update) on
batches made beforehand, so the data loader and the runner's hooks are not in it (the training log's
``data_time`` shows the loader's share). The tokenizer's batches are EmbeddedShapes images through the
config's own pipeline, with half of every batch decoding all 16 tokens as the quick start trains it
(``--full-fraction``); the generator's are random token ids and labels (its step never runs the tokenizer, so
none is loaded). Weights are random: a step costs the same whatever the weights.

FLOPs are counted by ``torch.utils.flop_counter`` over one step (matmuls, attention and convolutions, forward
and backward); the peak is a 2048 x 2048 fp32 matmul on the same threads. Prints the CPU, the step time
(median of ``--iters``), GFLOP per step, the share of the peak, and the operators that take the most time.
"""
import argparse
import os.path as osp
import statistics
import time

from mmengine.config import DictAction  # no torch: --help answers before it loads

from mmspectral.cli import fraction, output_file, positive_int

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {'tokenizer': 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py',
           'generator': 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Profile the quick start\'s training steps.')
    parser.add_argument('--which', nargs='+', choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument('--iters', type=positive_int, default=20, help='timed steps (after 5 warm-up steps)')
    parser.add_argument('--top', type=positive_int, default=15, help='operators listed')
    parser.add_argument('--full-fraction', type=fraction, default=0.5,
                        help="the tokenizer's share of samples decoding all tokens (the quick start's 0.5)")
    parser.add_argument('--tokenizer-options', nargs='+', action=DictAction, default={}, metavar='KEY=VALUE')
    parser.add_argument('--generator-options', nargs='+', action=DictAction, default={}, metavar='KEY=VALUE')
    parser.add_argument('--out', type=output_file, default=None, help='write the figures as JSON')
    return parser.parse_args(argv)


def tokenizer_step(options: dict, full_fraction: float):
    """A step function of the tokenizer config over 8 ready batches, and its batch size."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper

    from mmspectral.apis import load_config
    from mmspectral.registry import DATASETS, MODELS
    cfg = load_config(osp.join(REPO_ROOT, CONFIGS['tokenizer']), options)
    cfg.model.tokenizer.prefix_sampling = dict(cfg.model.tokenizer.prefix_sampling or {},
                                               full_fraction=full_fraction)
    batch_size = cfg.train_dataloader.batch_size
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, num_samples=8 * batch_size,
                                  cache_images=False))
    batches = [pseudo_collate([dataset[i * batch_size + j] for j in range(batch_size)]) for i in range(8)]
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    return (lambda i: model.train_step(batches[i % len(batches)], wrapper)), batch_size


def generator_step(options: dict):
    """A step function of the generator config (without its tokenizer) over random token batches, and its
    batch size."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.structures import BaseDataElement

    from mmspectral.apis import load_config
    from mmspectral.registry import MODELS
    cfg = load_config(osp.join(REPO_ROOT, CONFIGS['generator']), options)
    model_cfg = dict(cfg.model, tokenizer=None, tokenizer_checkpoint=None)
    gen = model_cfg['generator']
    batch_size = cfg.train_dataloader.batch_size
    rng = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(8):
        tokens = torch.randint(0, gen['vocab_size'], (batch_size, gen['num_tokens']), generator=rng)
        labels = torch.randint(0, gen['num_classes'], (batch_size,), generator=rng)
        samples = [BaseDataElement(gt_label=label) for label in labels]
        batches.append(dict(inputs=list(tokens), data_samples=samples))
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    return (lambda i: model.train_step(batches[i % len(batches)], wrapper)), batch_size


def profile(name: str, step, iters: int, top: int, peak: float) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    from torch.utils.flop_counter import FlopCounterMode
    for i in range(5):
        step(i)
    counter = FlopCounterMode(display=False)
    with counter:
        step(0)
    flops = counter.get_total_flops()
    times = []
    for i in range(iters):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(min(iters, 10)):
            step(i)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    ops = [dict(op=e.key, share=e.self_cpu_time_total / total, calls_per_step=e.count / min(iters, 10))
           for e in events[:top]]
    gflop = flops / 1e9
    print(f'{name}: {seconds * 1000:.1f} ms per step (median of {iters}), {gflop:.2f} GFLOP per step, '
          f'{gflop / seconds:.1f} GFLOP/s = {gflop / seconds / peak:.0%} of the fp32 matmul peak')
    for op in ops:
        print(f'  {op["share"]:6.1%}  {op["calls_per_step"]:7.1f} calls/step  {op["op"]}')
    return dict(seconds=seconds, times=times, gflop=gflop, peak_share=gflop / seconds / peak, ops=ops)


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmspectral.analysis.speed import announce_cpu, matmul_peak
    from mmspectral.apis import register_all_modules
    register_all_modules()
    cpu, _ = announce_cpu(torch.device('cpu'), bf16=False)
    peak = matmul_peak(torch.device('cpu'), torch.float32)
    print(f'# fp32 matmul peak {peak:.0f} GFLOP/s on {torch.get_num_threads()} threads')
    result = dict(cpu=cpu, torch=torch.__version__, threads=torch.get_num_threads(), matmul_peak_gflops=peak)
    for which in args.which:
        if which == 'tokenizer':
            step, batch = tokenizer_step(args.tokenizer_options, args.full_fraction)
        else:
            step, batch = generator_step(args.generator_options)
        result[which] = dict(profile(f'{which} (batch {batch})', step, args.iters, args.top, peak),
                             batch_size=batch)
    if args.out:
        from mmspectral.fileio import write_json
        write_json(args.out, result)
    return result


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)
