"""Table 4 as an experiment: does spectral ordering make tokens easier to generate? (docs/design.md)

    python tools/analysis/table4_gap.py                    # everything: about 3 hours on 2 AVX2 cores (below)
    python tools/analysis/table4_gap.py --jobs 2           # two runs at a time, one thread each (below)
    python tools/analysis/table4_gap.py --stages tokenizers  # only train the tokenizers

The design and the decision rule are in docs/design.md ("Table 4 as an experiment"), written before the first
run. In short: four tokenizer rows (TiTok tokens, TiTok matched in reconstruction quality to SpectralAR,
SpectralAR, SpectralAR with full_fraction 0.5) x 2 tokenizer seeds; on each, small generators (depth 1 / width
64, depth 2 / width 128) x 3 seeds x 2 data regimes (10,000 / 1,000 training images), evaluated after 100,
300 and 1,000 steps at a constant learning rate: the generation gap at cfg 0 (probe Frechet distance between
samples and reconstructions, probe accuracy gap), validation cross-entropy per position, the context gain over
a class-conditional unigram (nats per image), learnability (that gain against a reference generator's) and
the codes' rate. Then the pre-stated verdict.

Stages (``--stages``, default all, in this order; a finished stage is skipped, so the command continues an
interrupted run): ``tokenizers`` (tools/train.py, one MMEngine run per row and seed), ``tokens`` (held-out and
training images encoded; the matched TiTok checkpoint chosen), ``generators`` (the small grid, one JSON per
tokenizer), ``reference`` (the quick-start-sized generator per tokenizer), ``controls``
(exploratory, added after the primary verdict: no generator; held-out tokens with positions 1-16, 1-8 or 9-16
replaced by draws from the class-conditional unigram, decoded, their probe FD to the reconstructions),
``summary`` (table4_gap.md / .json,
table4_gap.png). Everything goes to ``--work-dir`` (default work_dirs/table4_gap).

Measured on an AMD EPYC (AVX2 only, 2 cores, fp32, shared with other jobs): tokenizers about 51 minutes (6 x
5,000 steps), the generator grid 45-90 minutes (48 runs; 25-35 s each at depth 1, 70-350 s at depth 2),
reference generators about 50 minutes (8 x 1,000 steps at depth 4), controls 1 minute, summary 20 seconds.

``--jobs N`` runs N tokenizer, generator or reference runs at a time, each in its own process with an equal
share of the threads. These models are too small for two threads to pay. Measured on the same CPU, idle,
2026-12-07, at commits 8947c67-be4fb02, under OpenMP's default wait policy (this script's); generator seed 0
on random tokens (seed 0), tokenizers at randomness.seed=0:
* Short runs: two runs side by side with one thread each finished 1.6-1.9x sooner than the same two runs one
  after the other with two threads each. Generators at depth 1 / width 64, 400 steps: 1.74x and 1.89x; at
  depth 2 / width 128, 150 steps: 1.67x and 1.56x. The tokenizer, 150 steps of tools/train.py, start-up
  included: 1.95x and 1.78x.
* Full-length tokenizers (``--jobs 2``, steps 500-1700 of 5,000): 0.142 s per step for each of the two runs,
  14.1 steps/s together. The published run did about 10.3 steps/s: 0.097 s per step with two threads, for the
  TiTok row of seed 0. The first pair (TiTok and SpectralAR, seed 0) finished in 769 s and 792 s, side by
  side. The published run trained TiTok seed 0 alone in 8 minutes.
* End to end with ``--jobs 2`` (commit 68156d5, a fresh work dir): tokenizers 38 minutes, generators 68
  minutes, the reference stage an estimated 25-35 minutes: about 2 h 20 min, against about 3 hours with
  ``--jobs 1``; not the 90 minutes asked for (docs/results.md).
With one thread per run, ``--jobs 2`` writes exactly the records ``--jobs 1`` writes (checked at toy sizes).
Against the published run (two threads per run) the sums are split differently and training diverges (the
tokenizers end 0.05-0.3 dB apart); the primary verdict was the same (docs/results.md).
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

import numpy as np
import torch

from mmspectral.analysis.table4 import (CODEBOOK, SIZES, compare, replace_span, select, spread,
                                        token_readouts, train_generator, unigram_alpha, unigram_ce,
                                        unigram_probs)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOKENIZER_CONFIGS = {
    'titok': 'configs/spectralar/ablation/spectralar-tiny_16tok_1xb32-5k_shapes-64_nospectral.py',
    'spectralar': 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py',
    'fullfrac': 'configs/spectralar/ablation/spectralar-tiny_16tok_1xb32-5k_shapes-64_fullfrac.py',
}
GENERATOR_CONFIGS = {
    'titok': 'configs/spectralar/ablation/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64_nospectral.py',
    'spectralar': 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py',
    'fullfrac': 'configs/spectralar/ablation/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64_fullfrac.py',
}
ROWS = ('titok', 'titok_matched', 'spectralar', 'fullfrac')
TRAINED_ROWS = ('spectralar', 'titok', 'fullfrac')
STAGES = ('tokenizers', 'tokens', 'generators', 'reference', 'controls', 'summary')
# exploratory controls, added after the primary verdict was read (docs/design.md): held-out tokens whose
# positions in the span are replaced by draws from the class-conditional unigram, decoded
CONTROL_SPANS = {'unigram': (0, 16), 'early': (0, 8), 'late': (8, 16)}
DATA = {'full': 10000, 'limited': 1000}
CLASS_SET = 'coarse'
IMAGE_SIZE = 64
NUM_HELD_OUT = 500          # validation seed 1, indices 0-499: the readouts
FLOOR_OFFSET = 500          # indices 500-999: the second set of the FD noise floor
MATCH_OFFSET, NUM_MATCH = 1000, 200  # indices 1000-1199: PSNR that picks the matched TiTok checkpoint
TRAIN_SEED, HELD_OUT_SEED = 0, 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Table 4 as an experiment: the generation gap (docs/design.md).')
    parser.add_argument('--work-dir', default='work_dirs/table4_gap')
    parser.add_argument('--stages', nargs='+', choices=STAGES, default=list(STAGES))
    parser.add_argument('--tokenizer-seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--generator-seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--budgets', type=int, nargs='+', default=[100, 300, 1000],
                        help='generator steps at which every small generator is evaluated')
    parser.add_argument('--sizes', nargs='+', choices=sorted(SIZES), default=['S', 'M'])
    parser.add_argument('--tokenizer-iters', type=int, default=5000)
    parser.add_argument('--checkpoint-interval', type=int, default=250,
                        help='TiTok checkpoints kept every this many steps (the matched row picks one)')
    parser.add_argument('--reference-iters', type=int, default=1000)
    parser.add_argument('--num-train-images', type=int, default=DATA['full'])
    parser.add_argument('--per-class', type=int, default=50, help='cfg-0 samples per class')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--warmup', type=int, default=50)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs at a time in the tokenizers, generators and reference stages, each in its '
                             'own process with the CPU threads shared out (2 cores, --jobs 2: one thread '
                             'each). The published figures used 1; another thread count changes sums in '
                             'their last bits, not the design')
    parser.add_argument('--one', nargs='+', help=argparse.SUPPRESS)  # a worker of --jobs: one run
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}.')
    if min(args.budgets) <= args.warmup:
        parser.error(f'every budget must exceed --warmup ({args.warmup}); got {args.budgets}.')
    if args.num_train_images < DATA['limited']:
        parser.error(f'--num-train-images must be at least {DATA["limited"]} (the limited regime).')
    args.budgets = sorted(set(args.budgets))
    return args


def log(msg: str) -> None:
    print(f'[table4_gap {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def run_commands(commands, jobs: int) -> None:
    """Run ``(command, log file, what)`` items, at most ``jobs`` at a time. With ``jobs`` > 1 each gets an
    equal share of the CPU threads (``OMP_NUM_THREADS``); with 1 the environment is left as it is. The first
    that fails stops the others and the stage, naming its log (finished runs are kept: run again to go on)."""
    env = None
    if jobs > 1:
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, torch.get_num_threads() // jobs)))
    pending, running = list(commands), []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                command, log_path, what = pending.pop(0)
                os.makedirs(osp.dirname(log_path), exist_ok=True)
                out = open(log_path, 'a')
                log(f'{what}: started (log: {log_path})')
                proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
                running.append((proc, out, log_path, what, time.time()))
            time.sleep(0.2)
            for item in list(running):
                proc, out, log_path, what, start = item
                if proc.poll() is None:
                    continue
                out.close()
                running.remove(item)
                if proc.returncode:
                    raise SystemExit(f'{what} failed: see {log_path}')
                log(f'{what}: {time.time() - start:.0f} s')
    finally:
        for proc, out, *_ in running:
            proc.terminate()
            proc.wait()
            out.close()


def worker_command(args, *one) -> list:
    """This script run as a worker of ``--jobs``: the same arguments, one run (``--one KIND ...``)."""
    return [sys.executable, osp.abspath(__file__), *args.argv, '--one', *map(str, one)]


# ---------------------------------------------------------------------------------------------- tokenizers
def row_file(args, row: str, seed: int, name: str) -> str:
    """``name`` in the folder of one tokenizer (row, seed)."""
    return osp.join(args.work_dir, row, f'seed{seed}', name)


def unfinished(args, name: str):
    """(seed, row, path) of each tokenizer whose ``name`` is not written yet: a stage's resumable loop."""
    for seed in args.tokenizer_seeds:
        for row in ROWS:
            path = row_file(args, row, seed, name)
            if not osp.isfile(path):
                yield seed, row, path


def tokenizer_dir(args, row: str, seed: int) -> str:
    return row_file(args, row, seed, 'tokenizer')


def train_tokenizers(args) -> None:
    """One tools/train.py run per trained row and seed (seed 0 of every row first; ``--jobs`` at a time)."""
    commands = []
    for seed in args.tokenizer_seeds:
        for row in TRAINED_ROWS:
            work = tokenizer_dir(args, row, seed)
            if osp.isfile(osp.join(work, f'iter_{args.tokenizer_iters}.pth')):
                continue
            interval = args.checkpoint_interval if row == 'titok' else args.tokenizer_iters
            keep = -1 if row == 'titok' else 1
            os.makedirs(osp.dirname(work), exist_ok=True)
            warmup = min(100, args.tokenizer_iters // 10 + 1)
            command = [sys.executable, osp.join(REPO, 'tools/train.py'), TOKENIZER_CONFIGS[row],
                       '--work-dir', work, '--resume', 'auto', '--cfg-options', f'randomness.seed={seed}',
                       f'train_cfg.max_iters={args.tokenizer_iters}',
                       f'train_cfg.val_interval={args.tokenizer_iters}',
                       f'param_scheduler.0.end={warmup}', f'param_scheduler.1.begin={warmup}',
                       f'param_scheduler.1.end={args.tokenizer_iters}',
                       f'default_hooks.checkpoint.interval={interval}',
                       f'default_hooks.checkpoint.max_keep_ckpts={keep}']
            commands.append((command, work + '.log', f'training the {row} tokenizer (seed {seed})'))
    run_commands(commands, args.jobs)


# ---------------------------------------------------------------------------------------------- tokens
def images_file(args) -> str:
    return osp.join(args.work_dir, 'images.npz')


def render_images(args) -> dict:
    """Training images (seed 0 split) and held-out images (seed 1: readouts, noise floor, matching), as uint8
    (N, 3, H, W), drawn once and kept in the work dir."""
    from mmspectral.evaluation.embedded_classifier import render_batch
    from mmspectral.fileio import atomic_write
    path = images_file(args)
    if osp.isfile(path):
        with np.load(path) as data:
            if len(data['train']) >= args.num_train_images:
                return {k: data[k] for k in data.files}
    log(f'drawing {args.num_train_images} training and {MATCH_OFFSET + NUM_MATCH} held-out images')
    out = {}
    for name, seed, count in (('train', TRAIN_SEED, args.num_train_images),
                              ('held_out', HELD_OUT_SEED, MATCH_OFFSET + NUM_MATCH)):
        images, labels = render_batch(range(count), IMAGE_SIZE, seed=seed, class_set=CLASS_SET)
        out[name] = (images * 255).round().to(torch.uint8).numpy()
        out[name + '_labels'] = labels.numpy()
    with atomic_write(path, 'wb') as f:
        np.savez(f, **out)
    return out


def unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float() / 255.0


def load_codec(row: str, checkpoint: str):
    """The row's GeneratorModel (its tokenizer loaded from ``checkpoint``): encode / decode / sample."""
    from mmspectral.apis import load_config
    from mmspectral.registry import MODELS
    cfg = load_config(osp.join(REPO, GENERATOR_CONFIGS[row.replace('_matched', '')]),
                      {'model.tokenizer_checkpoint': checkpoint})
    return MODELS.build(cfg.model).eval(), cfg


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch: int = 250) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


@torch.no_grad()
def full_psnr(model, images: torch.Tensor) -> float:
    from mmspectral.evaluation import psnr
    recons = batched(lambda x: model.decode(model.encode(x)), images)
    return float(psnr(recons.clamp(0, 1), images).mean())


def probe_of(args):
    from mmspectral.evaluation.embedded_classifier import load_or_train_shapes_classifier
    classifier, real_accuracy = load_or_train_shapes_classifier(
        osp.join(args.work_dir, f'shapes_probe_{CLASS_SET}_{IMAGE_SIZE}px.pth'), IMAGE_SIZE, CLASS_SET)
    return classifier.eval(), real_accuracy


def tokens_file(args, row: str, seed: int) -> str:
    return row_file(args, row, seed, 'tokens.npz')


def checkpoint_of(args, row: str, seed: int) -> str:
    if row == 'titok_matched':
        return read_json(row_file(args, row, seed, 'match.json'))['checkpoint']
    return osp.join(tokenizer_dir(args, row, seed), f'iter_{args.tokenizer_iters}.pth')


def match_titok(args, seed: int, images: dict) -> None:
    """Pick the TiTok checkpoint whose full-decode PSNR on the matching images is closest to SpectralAR's."""
    from mmspectral.fileio import write_json
    path = osp.join(args.work_dir, 'titok_matched', f'seed{seed}', 'match.json')
    if osp.isfile(path):
        return
    match = unit(images['held_out'][MATCH_OFFSET:MATCH_OFFSET + NUM_MATCH])
    target = full_psnr(load_codec('spectralar', checkpoint_of(args, 'spectralar', seed))[0], match)
    candidates = sorted(glob.glob(osp.join(tokenizer_dir(args, 'titok', seed), 'iter_*.pth')),
                        key=lambda p: int(osp.basename(p)[5:-4]))
    if not candidates:
        raise SystemExit(f'No TiTok checkpoints in {tokenizer_dir(args, "titok", seed)}: '
                         'run --stages tokenizers.')
    scores = {}
    for ckpt in candidates:
        scores[ckpt] = full_psnr(load_codec('titok', ckpt)[0], match)
        log(f'  titok seed {seed}: {osp.basename(ckpt)} {scores[ckpt]:.2f} dB (spectralar {target:.2f} dB)')
    best = min(scores, key=lambda c: abs(scores[c] - target))
    os.makedirs(osp.dirname(path), exist_ok=True)
    write_json(path, dict(checkpoint=best, psnr=scores[best], spectralar_psnr=target,
                          candidates={osp.basename(c): v for c, v in scores.items()},
                          images=f'validation seed {HELD_OUT_SEED}, indices {MATCH_OFFSET}-'
                                 f'{MATCH_OFFSET + NUM_MATCH - 1}'))
    log(f'titok_matched seed {seed}: {osp.basename(best)} ({scores[best]:.2f} dB against {target:.2f} dB)')


@torch.no_grad()
def encode_row(args, row: str, seed: int, images: dict, classifier) -> None:
    """Tokens of the training and held-out images, and the probe's view of the held-out reconstructions."""
    from mmspectral.evaluation import psnr
    from mmspectral.fileio import atomic_write
    path = tokens_file(args, row, seed)
    if osp.isfile(path):
        return
    model, _ = load_codec(row, checkpoint_of(args, row, seed))
    train = unit(images['train'][:args.num_train_images])
    held = unit(images['held_out'][:2 * NUM_HELD_OUT])
    train_ids = batched(model.encode, train)
    held_ids = batched(model.encode, held)
    recons = batched(model.decode, held_ids).clamp(0, 1)
    feats = batched(classifier.features, recons)
    with atomic_write(path, 'wb') as f:
        np.savez(f, train_ids=train_ids.numpy().astype(np.int16),
                 train_labels=images['train_labels'][:args.num_train_images],
                 held_ids=held_ids.numpy().astype(np.int16),
                 held_labels=images['held_out_labels'][:2 * NUM_HELD_OUT],
                 recon_feats=feats.numpy(), recon_pred=classifier.head(feats).argmax(1).numpy(),
                 recon_psnr=psnr(recons[:NUM_HELD_OUT], held[:NUM_HELD_OUT]).numpy())
    log(f'{row} seed {seed}: tokens written ({path})')


def make_tokens(args) -> None:
    images = render_images(args)
    classifier, _ = probe_of(args)
    for seed in args.tokenizer_seeds:
        for row in TRAINED_ROWS:
            if not osp.isfile(checkpoint_of(args, row, seed)):
                raise SystemExit(f'{checkpoint_of(args, row, seed)} is missing: '
                                 'run --stages tokenizers first.')
        match_titok(args, seed, images)
        for row in ROWS:
            encode_row(args, row, seed, images, classifier)


def load_tokens(args, row: str, seed: int) -> dict:
    with np.load(tokens_file(args, row, seed)) as data:
        return {k: torch.from_numpy(data[k].astype(np.int64) if k.endswith('_ids') else data[k])
                for k in data.files}


# ---------------------------------------------------------------------------------------------- generators
@torch.no_grad()
def gap_readouts(model, gen, tokens: dict, classifier, per_class: int) -> dict:
    from mmspectral.evaluation.generative import frechet_distance_from_features
    from mmspectral.models.generators import make_rng
    num_classes = gen.num_classes
    wanted = torch.arange(num_classes).repeat_interleave(per_class)
    model.generator = gen
    rng = make_rng(0)  # one RNG across the batches, as the run that wrote results.md
    samples = batched(lambda lab: model.sample(lab, cfg_scale=0.0, top_k=0, top_p=0.0, temperature=1.0,
                                               rng=rng)['images'], wanted)
    feats = batched(classifier.features, samples.clamp(0, 1))
    predicted = classifier.head(feats).argmax(1)
    recon_feats = tokens['recon_feats'][:NUM_HELD_OUT]
    recon_hit = tokens['recon_pred'][:NUM_HELD_OUT] == tokens['held_labels'][:NUM_HELD_OUT]
    recon_acc = float(recon_hit.float().mean())
    sample_acc = float((predicted == wanted).float().mean())
    return dict(fd_gap=frechet_distance_from_features(feats.numpy(), recon_feats.numpy()),
                sample_accuracy=sample_acc, recon_accuracy=recon_acc, acc_gap=recon_acc - sample_acc)


def generators_file(args, row: str, seed: int) -> str:
    return row_file(args, row, seed, 'generators.json')


def generator_record(args, row: str, seed: int, size: str, data: str, gseed: int, loaded=None) -> dict:
    """One small generator of the grid, trained and read out at every budget. ``loaded``: (classifier, codec
    model, its config, tokens) of this tokenizer, when the caller holds them."""
    if loaded is None:
        loaded = (probe_of(args)[0], *load_codec(row, checkpoint_of(args, row, seed)),
                  load_tokens(args, row, seed))
    classifier, model, cfg, tokens = loaded
    count, start, at = DATA[data], time.time(), {}

    def on_budget(step, gen):
        at[step] = dict(**token_readouts(gen, tokens, NUM_HELD_OUT),
                        **gap_readouts(model, gen, tokens, classifier, args.per_class))

    train_generator(cfg, SIZES[size], tokens['train_ids'][:count], tokens['train_labels'][:count].long(),
                    gseed, args.budgets, on_budget, warmup=args.warmup, batch_size=args.batch_size)
    log(f'{row} seed {seed}, {size} {data} g{gseed}: fd_gap '
        + ' '.join(f'{at[b]["fd_gap"]:.2f}' for b in args.budgets) + f' ({time.time() - start:.0f} s)')
    return dict(size=size, data=data, seed=gseed, budgets=at)


def part_file(args, row: str, seed: int, size: str, data: str, gseed: int) -> str:
    """Where a worker of ``--jobs`` leaves one generator's record."""
    return row_file(args, row, seed, osp.join('generator_runs', f'{size}_{data}_g{gseed}.json'))


def run_generators(args) -> None:
    from mmspectral.fileio import write_json
    grid = [(size, data, gseed) for size in args.sizes for data in DATA for gseed in args.generator_seeds]
    if args.jobs > 1:  # the runs in worker processes first; their records are gathered below, in grid order
        commands = []
        for seed in args.tokenizer_seeds:
            for row in ROWS:
                path = generators_file(args, row, seed)
                records = read_json(path) if osp.isfile(path) else []
                done = {(r['size'], r['data'], r['seed']) for r in records}
                commands += [(worker_command(args, 'generator', row, seed, *run),
                              part_file(args, row, seed, *run)[:-len('.json')] + '.log',
                              f'{row} seed {seed}, {" ".join(map(str, run))}') for run in grid
                             if run not in done and not osp.isfile(part_file(args, row, seed, *run))]
        run_commands(commands, args.jobs)
    classifier = None
    for seed in args.tokenizer_seeds:
        for row in ROWS:
            path = generators_file(args, row, seed)
            records = read_json(path) if osp.isfile(path) else []
            done = {(r['size'], r['data'], r['seed']) for r in records}
            loaded = None
            for run in grid:
                if run in done:
                    continue
                if osp.isfile(part_file(args, row, seed, *run)):
                    records.append(read_json(part_file(args, row, seed, *run)))
                else:
                    if loaded is None:
                        classifier = classifier or probe_of(args)[0]
                        loaded = (classifier, *load_codec(row, checkpoint_of(args, row, seed)),
                                  load_tokens(args, row, seed))
                    records.append(generator_record(args, row, seed, *run, loaded=loaded))
                write_json(path, records)


def run_reference(args) -> None:
    if args.jobs > 1:
        run_commands([(worker_command(args, 'reference', row, seed), path[:-len('.json')] + '.log',
                       f'the {row} reference generator (seed {seed})')
                      for seed, row, path in unfinished(args, 'reference.json')], args.jobs)
    for seed, row, path in unfinished(args, 'reference.json'):
        reference_result(args, row, seed, path)


def reference_result(args, row: str, seed: int, path: str) -> None:
    """The quick-start-sized generator of one tokenizer: its held-out readouts, written to ``path``."""
    from mmspectral.fileio import write_json
    _, cfg = load_codec(row, checkpoint_of(args, row, seed))
    tokens = load_tokens(args, row, seed)
    size = dict(depth=cfg.model.generator.depth)
    out = {}
    start = time.time()
    train_generator(cfg, size, tokens['train_ids'], tokens['train_labels'].long(), 0,
                    [args.reference_iters],
                    lambda step, gen: out.update(token_readouts(gen, tokens, NUM_HELD_OUT)),
                    warmup=100, batch_size=args.batch_size, decay_to=0.1)
    write_json(path, dict(out, depth=size['depth'], iters=args.reference_iters,
                          seconds=time.time() - start))
    log(f'{row} seed {seed}: reference generator, held-out NLL {sum(out["ce"]):.2f} nats per image '
        f'({time.time() - start:.0f} s)')


# ---------------------------------------------------------------------------------------------- summary
LABELS = {'titok': 'TiTok tokens', 'titok_matched': 'TiTok, matched PSNR', 'spectralar': 'SpectralAR',
          'fullfrac': 'SpectralAR, full_fraction 0.5'}
COMPARISONS = (('spectralar', 'titok_matched', 'primary'), ('spectralar', 'titok', 'descriptive'),
               ('fullfrac', 'titok_matched', 'descriptive'))
METRICS = (('fd_gap', 'lower'), ('acc_gap', 'lower'), ('learnability', 'higher'))


@torch.no_grad()
def run_controls(args) -> None:
    """Exploratory: how far decodes of partly unigram-drawn tokens land from the reconstructions, with no
    generator. Tells a decoder that tolerates wrong late tokens from a generator that learns better."""
    from mmspectral.evaluation.generative import frechet_distance_from_features
    from mmspectral.fileio import write_json
    classifier, _ = probe_of(args)
    for seed, row, path in unfinished(args, 'controls.json'):
        model, _ = load_codec(row, checkpoint_of(args, row, seed))
        tokens = load_tokens(args, row, seed)
        probs = unigram_probs(tokens['train_ids'], tokens['train_labels'])
        ids, labels = tokens['held_ids'][:NUM_HELD_OUT], tokens['held_labels'][:NUM_HELD_OUT]
        recon_feats = tokens['recon_feats'][:NUM_HELD_OUT].numpy()
        out = {}
        for name, span in CONTROL_SPANS.items():
            rng = torch.Generator().manual_seed(0)
            images = batched(model.decode, replace_span(ids, labels, probs, span, rng)).clamp(0, 1)
            feats = batched(classifier.features, images)
            accuracy = float((classifier.head(feats).argmax(1) == labels.long()).float().mean())
            fd = frechet_distance_from_features(feats.numpy(), recon_feats)
            out[name] = dict(span=list(span), fd=fd, accuracy=accuracy)
        write_json(path, out)
        log(f'{row} seed {seed}: controls ' + ', '.join(f'{k} FD {v["fd"]:.2f}' for k, v in out.items()))


def collect(args) -> tuple:
    """Per tokenizer (row, seed): its figures; and one flat record per (row, seed, size, data, gseed,
    budget)."""
    from mmspectral.evaluation import position_perplexity
    from mmspectral.evaluation.generative import frechet_distance_from_features
    tokenizers, flat = {}, []
    for row in ROWS:
        for seed in args.tokenizer_seeds:
            tokens = load_tokens(args, row, seed)
            held = tokens['held_ids'][:NUM_HELD_OUT], tokens['held_labels'][:NUM_HELD_OUT]
            alphas = {data: unigram_alpha(tokens['train_ids'][:count], tokens['train_labels'][:count])
                      for data, count in DATA.items()}
            rates = {data: sum(unigram_ce(tokens['train_ids'][:count], tokens['train_labels'][:count], *held,
                                          alpha=alphas[data])) for data, count in DATA.items()}
            feats = tokens['recon_feats'].numpy()
            info = dict(rates=rates, unigram_alpha=alphas, psnr=float(tokens['recon_psnr'].mean()),
                        recon_accuracy=float((tokens['recon_pred'][:NUM_HELD_OUT] == held[1]).float().mean()),
                        floor=frechet_distance_from_features(feats[:NUM_HELD_OUT], feats[FLOOR_OFFSET:]),
                        perplexity=position_perplexity(tokens['held_ids'][:NUM_HELD_OUT], CODEBOOK))
            ref_path = row_file(args, row, seed, 'reference.json')
            if osp.isfile(ref_path):
                ref = read_json(ref_path)
                info['reference_nll'] = sum(ref['ce'])
                info['reference_gain'] = rates['full'] - info['reference_nll']
            control_path = row_file(args, row, seed, 'controls.json')
            if osp.isfile(control_path):
                info['controls'] = read_json(control_path)
            if row == 'titok_matched':
                info['match'] = read_json(row_file(args, row, seed, 'match.json'))
            tokenizers[row, seed] = info
            path = generators_file(args, row, seed)
            for rec in (read_json(path) if osp.isfile(path) else []):
                for budget, out in rec['budgets'].items():
                    nll = sum(out['ce'])
                    gain = rates[rec['data']] - nll
                    flat.append(dict(row=row, tseed=seed, size=rec['size'], data=rec['data'],
                                     gseed=rec['seed'],
                                     budget=int(budget), fd_gap=out['fd_gap'], acc_gap=out['acc_gap'],
                                     sample_accuracy=out['sample_accuracy'], nll=nll, gain=gain,
                                     learnability=gain / info['reference_gain'] if 'reference_gain' in info
                                     else float('nan')))
    return tokenizers, flat


def summarize(args) -> dict:
    from mmspectral.fileio import atomic_write, write_json
    tokenizers, flat = collect(args)
    budgets = sorted({r['budget'] for r in flat})
    cells = [(size, data, budget) for size in args.sizes for data in DATA for budget in budgets]
    lines = ['## Tokenizers (mean over tokenizer seeds; held-out images)', '',
             '| row | PSNR (dB) | probe accuracy of reconstructions | '
             'rate, 10k / 1k images (nats per image) | '
             'reference NLL (nats per image) | FD noise floor | code perplexity, positions 1-8 / 9-16 |',
             '|---|---|---|---|---|---|---|']
    for row in ROWS:
        infos = [tokenizers[row, s] for s in args.tokenizer_seeds]
        ppl = [np.mean([np.mean(i['perplexity'][:8]) for i in infos]), np.mean([np.mean(i['perplexity'][8:])
                                                                               for i in infos])]
        lines.append(f'| {LABELS[row]} | {spread([i["psnr"] for i in infos])} | '
                     f'{spread([i["recon_accuracy"] for i in infos])} | '
                     f'{np.mean([i["rates"]["full"] for i in infos]):.1f} / '
                     f'{np.mean([i["rates"]["limited"] for i in infos]):.1f} | '
                     f'{spread([i.get("reference_nll", float("nan")) for i in infos])} | '
                     f'{spread([i["floor"] for i in infos])} | {ppl[0]:.0f} / {ppl[1]:.0f} |')
    for seed in args.tokenizer_seeds:
        match = tokenizers['titok_matched', seed]['match']
        lines.append(f'\nMatched TiTok, tokenizer seed {seed}: {osp.basename(match["checkpoint"])} '
                     f'({match["psnr"]:.2f} dB against SpectralAR\'s {match["spectralar_psnr"]:.2f} dB on '
                     f'{match["images"]}).')
    lines += ['', '## Generation gap and learnability (mean [min, max] over tokenizer x generator seeds)', '',
              '| size | data | steps | row | fd_gap | acc_gap | sample accuracy | held-out NLL | '
              'learnability |',
              '|---|---|---|---|---|---|---|---|---|']
    for size, data, budget in cells:
        for row in ROWS:
            rs = select(flat, row=row, size=size, data=data, budget=budget)
            if rs:
                lines.append(f'| {size} | {data} | {budget} | {LABELS[row]} | '
                             + ' | '.join(spread([r[k] for r in rs]) for k in
                                          ('fd_gap', 'acc_gap', 'sample_accuracy', 'nll', 'learnability'))
                             + ' |')
    smallest = (args.sizes[0], 'full', budgets[0]) if budgets else None
    regime = {}
    if smallest:
        for row in ROWS:
            rs = select(flat, row=row, size=smallest[0], data='full', budget=smallest[2])
            floor = np.mean([tokenizers[row, s]['floor'] for s in args.tokenizer_seeds])
            gap = float(np.mean([r['fd_gap'] for r in rs])) if rs else float('nan')
            regime[row] = dict(fd_gap=gap, floor=float(floor), ok=bool(gap > 2 * floor))
    lines += ['', f'## Regime check: mean fd_gap at {smallest} against twice the noise floor', '']
    lines += [f'- {LABELS[row]}: {v["fd_gap"]:.2f} vs floor {v["floor"]:.2f}: '
              f'{"generator is the bottleneck" if v["ok"] else "NOT clearly positive"}'
              for row, v in regime.items()]
    if any('controls' in tokenizers[row, s] for row in ROWS for s in args.tokenizer_seeds):
        heads = [f'{name}: positions {a + 1}-{b}' for name, (a, b) in CONTROL_SPANS.items()]
        lines += ['', '## Controls (exploratory, no generator): held-out tokens with a span replaced by '
                  'class-conditional unigram draws, decoded; probe FD to the reconstructions / probe '
                  'accuracy',
                  '', '| row | ' + ' | '.join(heads) + ' |', '|---|' + '---|' * len(CONTROL_SPANS)]
        for row in ROWS:
            found = [tokenizers[row, s]['controls'] for s in args.tokenizer_seeds
                     if 'controls' in tokenizers[row, s]]
            cells_of = [f'{spread([c[name]["fd"] for c in found])} / '
                        f'{np.mean([c[name]["accuracy"] for c in found]):.2f}' for name in CONTROL_SPANS]
            lines.append(f'| {LABELS[row]} | ' + ' | '.join(cells_of) + ' |')
    verdicts = []
    lines += ['', '## Verdicts (pre-stated rule, docs/design.md)', '']
    for challenger, base, kind in COMPARISONS:
        for metric, better in METRICS:
            result = compare(flat, challenger, base, metric, better, cells)
            result['kind'] = kind if metric == 'fd_gap' else ('secondary' if kind == 'primary' else kind)
            verdicts.append(result)
            lines.append(f'- {LABELS[challenger]} vs {LABELS[base]}, {metric} ({result["kind"]}): '
                         f'**{result["verdict"]}** (cells favouring {LABELS[challenger]}: '
                         f'{result["favour"]}, '
                         f'favouring {LABELS[base]}: {result["against"]}, of {len(cells)})')
    for result in verdicts[:1]:
        lines += ['', f'Cells of the primary comparison ({result["metric"]}, d = {LABELS[result["base"]]} '
                  f'minus {LABELS[result["challenger"]]}):', '',
                  '| size | data | steps | pairs with d > 0 | mean d | cell |',
                  '|---|---|---|---|---|---|']
        lines += [f'| {c["size"]} | {c["data"]} | {c["budget"]} | {c["positive"]} of {c["pairs"]} | '
                  f'{c["mean_diff"]:.2f} | {c["verdict"]} |' for c in result['cells']]
    table = '\n'.join(lines) + '\n'
    with atomic_write(osp.join(args.work_dir, 'table4_gap.md')) as f:
        f.write(table)
    result = dict(tokenizers={f'{row}/seed{s}': v for (row, s), v in tokenizers.items()}, records=flat,
                  regime=regime, verdicts=verdicts, design='docs/design.md, "Table 4 as an experiment"')
    write_json(osp.join(args.work_dir, 'table4_gap.json'), result)
    plot(args, flat, budgets, osp.join(args.work_dir, 'table4_gap.png'))
    print(table)
    return result


def plot(args, flat, budgets, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [(size, data) for size in args.sizes for data in DATA]
    fig, axes = plt.subplots(2, len(panels), figsize=(3.2 * len(panels), 5.6), squeeze=False)
    for j, (size, data) in enumerate(panels):
        for i, (metric, label) in enumerate((('fd_gap', 'probe FD, samples vs reconstructions'),
                                             ('learnability', 'context gain / reference gain'))):
            ax = axes[i, j]
            drawn = False
            for k, row in enumerate(ROWS):
                stats = [[r[metric] for r in select(flat, row=row, size=size, data=data, budget=b)
                          if r[metric] == r[metric]] for b in budgets]
                keep = [n for n, s in enumerate(stats) if s]
                if not keep:
                    continue
                drawn = True
                x = np.array([budgets[n] for n in keep]) * (1 + 0.04 * (k - 1.5))
                mean = np.array([np.mean(stats[n]) for n in keep])
                low = mean - np.array([min(stats[n]) for n in keep])
                high = np.array([max(stats[n]) for n in keep]) - mean
                ax.errorbar(x, mean, yerr=[low, high], marker='o', capsize=3, label=LABELS[row])
            if not drawn:
                ax.text(0.5, 0.5, 'not measured yet\n(--stages reference)', ha='center', va='center',
                        transform=ax.transAxes, fontsize=8)
                ax.set_yticks([])
            ax.set_xscale('log')
            ax.set_xticks(budgets)
            ax.set_xticklabels([str(b) for b in budgets])
            ax.set_title(f'{size}, {data} data' if i == 0 else '', fontsize=9)
            ax.set_xlabel('generator steps' if i == 1 else '')
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)
    from mmspectral.apis import register_all_modules
    register_all_modules()
    os.makedirs(args.work_dir, exist_ok=True)
    if args.one:  # a worker of --jobs
        from mmspectral.fileio import write_json
        kind, row, seed, *rest = args.one
        if kind == 'generator':
            size, data, gseed = rest
            path = part_file(args, row, int(seed), size, data, int(gseed))
            record = generator_record(args, row, int(seed), size, data, int(gseed))
            os.makedirs(osp.dirname(path), exist_ok=True)
            write_json(path, record)
        else:
            reference_result(args, row, int(seed), row_file(args, row, int(seed), 'reference.json'))
        return
    if 'tokenizers' in args.stages:
        train_tokenizers(args)
    if 'tokens' in args.stages:
        make_tokens(args)
    if 'generators' in args.stages:
        run_generators(args)
    if 'reference' in args.stages:
        run_reference(args)
    if 'controls' in args.stages:
        run_controls(args)
    if 'summary' in args.stages:
        summarize(args)


if __name__ == '__main__':
    main()
