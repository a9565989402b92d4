"""Compare configured tokenizer / generator pairs side by side, as the paper's Table 2.

    python tools/benchmark.py CONFIG [CONFIG ...] [--checkpoints CKPT|- ...] [--batch-size 8]
        [--train-batch-size 16] [--iters 3] [--device cpu|cuda] [--out-dir work_dirs/benchmark]
        [--quality-per-class 20] [--probe PATH] [--ref REF.npz --inception-weights PATH] [--no-wait]

Every CONFIG is a generator config (a GeneratorModel with its tokenizer). For each, in a fresh process (so
that peak memory is its own), the script reports parameters (tokenizer, generator), tokens per image, AR
steps, sampling images / s (the generator alone, the config's sampling settings), decoding images / s (tokens
to pixels), training images / s (one optimiser step of the config's optim_wrapper on random tokens, or images
when the config encodes on the fly), and peak memory of sampling and of training. Without a checkpoint the
weights are random (speed does not depend on them) and the quality columns stay empty. With a checkpoint (one
per config, ``-`` for none) it also reports sample quality on class-balanced samples (``--quality-per-class``
per class, same seeds for every model):

* EmbeddedShapes generators (10 classes): the probe classifier's class accuracy and the Frechet distance in
  its feature space against real images (tools/train_probe.py; ``--probe`` reuses a saved probe);
* other generators, with ``--ref`` (an ADM reference batch or a statistics npz) and ``--inception-weights``:
  FID, IS, precision and recall (docs/evaluation.md; use tools/sample.py and tools/eval_fid.py for the
  50,000-sample protocol numbers).

Writes ``benchmark.md``, ``benchmark.csv`` and ``benchmark.json`` to ``--out-dir``. CPU timings wait for an
idle machine first and report the CPU time other processes used while measuring.
"""
import argparse
import csv
import io
import multiprocessing
import os
import os.path as osp

import torch
from mmengine.config import DictAction

from mmspectral.cli import existing_file, non_negative_int, output_folder, positive_int
from mmspectral.fileio import atomic_write, write_json

COLUMNS = (
    ('model', 'model', '{}'),
    ('tokenizer_params_m', 'tokenizer params (M)', '{:.1f}'),
    ('generator_params_m', 'generator params (M)', '{:.1f}'),
    ('num_tokens', 'tokens', '{}'),
    ('ar_steps', 'AR steps', '{}'),
    ('sample_images_per_s', 'sampling img/s', '{:.2f}'),
    ('decode_images_per_s', 'decoding img/s', '{:.2f}'),
    ('total_images_per_s', 'sampling + decoding img/s', '{:.2f}'),
    ('train_images_per_s', 'training img/s', '{:.1f}'),
    ('train_tokens_per_s', 'training tokens/s', '{:.0f}'),
    ('sample_peak_mib', 'sampling peak MiB', '{:.0f}'),
    ('train_peak_mib', 'training peak MiB', '{:.0f}'),
    ('foreign_cpu_s', 'foreign CPU s', '{:.1f}'),
    ('class_accuracy', 'probe class acc.', '{:.3f}'),
    ('probe_fd', 'probe FD', '{:.2f}'),
    ('fid', 'FID', '{:.2f}'),
    ('inception_score', 'IS', '{:.1f}'),
    ('precision', 'Pre', '{:.3f}'),
    ('recall', 'Rec', '{:.3f}'),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Side-by-side speed, memory and quality of generator configs.')
    parser.add_argument('configs', nargs='+', help='generator configs (GeneratorModel with a tokenizer)')
    parser.add_argument('--checkpoints', nargs='+', default=None,
                        help="one per config: a trained generator checkpoint, or '-' for random weights")
    parser.add_argument('--batch-size', type=positive_int, default=8, help='sampling batch size')
    parser.add_argument('--train-batch-size', type=positive_int, default=16)
    parser.add_argument('--iters', type=positive_int, default=3,
                        help='timed repeats (median) after one warm-up')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out-dir', default='work_dirs/benchmark', type=output_folder)
    parser.add_argument('--quality-per-class', type=positive_int, default=20,
                        help='samples per class for quality columns')
    parser.add_argument('--probe', default=None,
                        help='saved EmbeddedShapes probe (trained and saved if missing)')
    parser.add_argument('--ref', default=None, type=existing_file,
                        help='reference batch / statistics npz for FID (not EmbeddedShapes)')
    parser.add_argument('--inception-weights', default=None, type=existing_file,
                        help='pt_inception-2015-12-05 weights for FID')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    parser.add_argument('--no-wait', action='store_true', help='do not wait for an idle machine')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='overrides applied to every config')
    args = parser.parse_args(argv)
    if args.checkpoints is None:
        args.checkpoints = ['-'] * len(args.configs)
    if len(args.checkpoints) != len(args.configs):
        parser.error(f'--checkpoints needs one entry per config ({len(args.configs)}), got '
                     f'{len(args.checkpoints)}; use - for a config without one.')
    for path in args.configs + [c for c in args.checkpoints if c != '-']:
        if not osp.isfile(path):
            parser.error(f'{path} does not exist.')
    return args


def _build(config: str, checkpoint: str, device: torch.device, cfg_options):
    """The GeneratorModel of ``config``: trained weights from ``checkpoint``, or random ones (``-``)."""
    from mmspectral.apis import init_generator, load_config, register_all_modules
    from mmspectral.registry import MODELS
    register_all_modules()
    if checkpoint != '-':
        return load_config(config, cfg_options), init_generator(config, checkpoint, device, cfg_options)
    cfg = load_config(config, cfg_options)
    if cfg.model.get('type') != 'GeneratorModel':
        raise ValueError(f'{config} must configure a GeneratorModel, '
                         f'got model.type={cfg.model.get("type")!r}.')
    cfg.model.tokenizer_checkpoint = None  # random weights: speed does not depend on them
    torch.manual_seed(0)
    return cfg, MODELS.build(cfg.model).to(device).eval()


def _train_speed(cfg, model, batch_size: int, iters: int, device: torch.device) -> dict:
    """One optimiser step of the config's optim_wrapper on random data; images / s and peak memory."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmengine.structures import BaseDataElement

    from mmspectral.analysis.speed import measure
    gen = model.gen
    with DefaultScope.overwrite_default_scope('mmspectral'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    labels = torch.randint(0, gen.num_classes, (batch_size,))
    if model.encode_on_the_fly:
        size = model.tokenizer.image_size
        inputs = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8).float()
    else:
        inputs = torch.randint(0, gen.vocab_size, (batch_size, gen.num_tokens))
    data = dict(inputs=inputs, data_samples=[BaseDataElement(gt_label=label.view(1)) for label in labels])
    model.train()
    result = measure(lambda: model.train_step(data, wrapper), iters, device)
    model.eval()
    return dict(train_images_per_s=batch_size / result['seconds'],
                train_tokens_per_s=batch_size * gen.num_tokens / result['seconds'],
                train_peak_mib=result['peak_mib'], foreign_cpu_s=result['foreign_cpu_s'])


def _sampling_speed(model, batch_size: int, iters: int, device: torch.device) -> dict:
    """Generator sampling and tokenizer decoding, timed apart."""
    from mmspectral.analysis.speed import measure
    from mmspectral.models.generators import make_rng
    gen = model.gen
    labels = torch.arange(batch_size, device=device) % gen.num_classes
    rng = make_rng(0)
    sample = measure(lambda: model.sample(labels, decode=False, rng=rng), iters, device)
    tokens = model.sample(labels, decode=False, rng=rng)['tokens']
    decode = measure(lambda: model.decode(tokens), iters, device)
    gen.release_packed_weights()
    total = sample['seconds'] + decode['seconds']
    return dict(sample_images_per_s=batch_size / sample['seconds'],
                decode_images_per_s=batch_size / decode['seconds'], total_images_per_s=batch_size / total,
                sample_peak_mib=max(sample['peak_mib'], decode['peak_mib']),
                foreign_cpu_s=sample['foreign_cpu_s'] + decode['foreign_cpu_s'])


def _quality(cfg, model, args, device: torch.device) -> dict:
    """Sample quality of a trained generator (see the module docstring)."""
    from mmspectral.evaluation.sample_quality import generator_quality
    return generator_quality(model, per_class=args.quality_per_class, batch_size=args.batch_size,
                             seed=args.seed, probe=args.probe, ref=args.ref,
                             inception_weights=args.inception_weights, device=device)


def measure_config(config: str, checkpoint: str, options: dict) -> dict:
    """Every figure of one config (runs in a child process)."""
    args = argparse.Namespace(**options)
    device = torch.device(args.device)
    cfg, model = _build(config, checkpoint, device, args.cfg_options)
    gen = model.gen
    row = dict(model=osp.splitext(osp.basename(config))[0], config=config,
               checkpoint=None if checkpoint == '-' else checkpoint,
               tokenizer_params_m=sum(p.numel() for p in model.tokenizer.parameters()) / 1e6,
               generator_params_m=sum(p.numel() for p in gen.parameters()) / 1e6,
               num_tokens=gen.num_tokens, ar_steps=-(-gen.num_tokens // gen.block_size))
    with torch.no_grad():
        sampling = _sampling_speed(model, args.batch_size, args.iters, device)
    training = _train_speed(cfg, model, args.train_batch_size, args.iters, device)
    row.update(sampling)
    row.update(training, foreign_cpu_s=sampling['foreign_cpu_s'] + training['foreign_cpu_s'])
    if checkpoint != '-':
        with torch.no_grad():
            row.update(_quality(cfg, model, args, device))
    return row


def to_markdown(rows) -> str:
    shown = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = ['| ' + ' | '.join(title for _, title, _ in shown) + ' |', '|' + '---|' * len(shown)]
    for r in rows:
        cells = [fmt.format(r[key]) if r.get(key) is not None else '' for key, _, fmt in shown]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def to_csv(rows) -> str:
    keys = [c[0] for c in COLUMNS] + ['config', 'checkpoint']
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv=None):
    args = parse_args(argv)
    from mmspectral.allocator import freed_memory_kept, keep_freed_memory
    from mmspectral.analysis.speed import wait_until_idle
    device = torch.device(args.device)
    print(f'# batch {args.batch_size} (sampling), {args.train_batch_size} (training), {device}, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    context = multiprocessing.get_context('spawn')
    rows = []
    for config, checkpoint in zip(args.configs, args.checkpoints):
        if not args.no_wait and device.type == 'cpu':
            wait_until_idle()
        # a fresh process per config (its own peak memory), with this process's malloc setting
        with context.Pool(1, initializer=keep_freed_memory if freed_memory_kept() else None) as pool:
            rows.append(pool.apply(measure_config, (config, checkpoint, vars(args))))
        print(f'measured {rows[-1]["model"]}')
    table = to_markdown(rows)
    print(table)
    os.makedirs(args.out_dir, exist_ok=True)
    with atomic_write(osp.join(args.out_dir, 'benchmark.md')) as f:
        f.write(table)
    with atomic_write(osp.join(args.out_dir, 'benchmark.csv')) as f:
        f.write(to_csv(rows))
    write_json(osp.join(args.out_dir, 'benchmark.json'), rows)
    return rows


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
