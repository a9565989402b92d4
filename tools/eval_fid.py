"""FID, sFID, Inception Score, precision and recall of a samples npz against a reference, as ADM's evaluator.

    python tools/eval_fid.py SAMPLES.npz --ref VIRTUAL_imagenet256_labeled.npz \
        --inception-weights checkpoints/pt_inception-2015-12-05-6726825d.pth \
        [--batch-size 50] [--out metrics.json] [--save-ref-stats ref_stats.npz] [--device cuda]
    python tools/eval_fid.py SAMPLES.npz --ref ref_stats.npz --inception-weights ...   # reuse the statistics
    python tools/eval_fid.py seed0/samples.npz seed1/samples.npz seed2/samples.npz --ref ... --out fid.json
        # several sample sets (sampling seeds): each set's metrics, their mean and spread

Uncertainty (docs/evaluation.md, "Reporting an FID"): with several sample sets the record gives every
metric's mean, standard deviation and range over the sets, i.e. over sampling seeds; for each set, unless
``--bootstrap 0``, FID's interval over ``--bootstrap`` resamplings of its images (``--confidence``, default
95%). The record also holds what produced the numbers: the sha256 of every samples file and of the reference,
the extractor and its weights' hash, and the sampling record tools/sample.py left beside each samples file
(checkpoint hash, sampling settings, seed).

SAMPLES.npz is what tools/sample.py writes (``arr_0``: uint8 N x H x W x 3) or a statistics file. ``--ref``
is an ADM reference batch (images and the TF graph's mu/sigma), an images npz, or a statistics file written
by ``--save-ref-stats`` (``--save-sample-stats`` keeps the samples'). By default the reference images go
through the same network as the samples; ``--use-ref-stats`` takes the reference file's stored
mu/sigma/mu_s/sigma_s for FID and sFID instead. The network is the PyTorch port of the 2015-12-05 TF Inception
(see mmspectral/evaluation/generative/inception.py): its numbers are close to, not identical with, the TF
evaluator's. ``--extractor NAME`` picks another registered extractor (``--extractor-options key=value`` for
its arguments, ``--custom-imports my_module`` to register one of your own). Prints the metrics and writes
them as JSON (default: next to SAMPLES.npz).
"""
import argparse
import importlib
import json
import os.path as osp
import time
from typing import List, Optional

import numpy as np
import torch
from mmengine.config import DictAction

from mmspectral.apis import register_all_modules
from mmspectral.cli import fraction, non_negative_int, output_file, output_problem, positive_int
from mmspectral.evaluation.generative import (build_feature_extractor, evaluate_feature_sets,
                                              features_from_npz, save_feature_set)
from mmspectral.evaluation.generative.npz_io import NpzFormatError, check_images, npz_arrays
from mmspectral.evaluation.generative.statistics import fid_bootstrap
from mmspectral.fileio import file_identity, write_json
from mmspectral.fileio.provenance import PROVENANCE_FILE


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='FID / sFID / IS / precision / recall of a samples npz.')
    parser.add_argument('samples', nargs='+',
                        help='samples npz (arr_0: uint8 N x H x W x 3) or statistics file; several: one per '
                             'sampling seed')
    parser.add_argument('--ref', required=True,
                        help='reference npz: ADM reference batch, images, or statistics')
    parser.add_argument('--inception-weights', default=None,
                        help='path to pt_inception-2015-12-05-6726825d.pth (InceptionV3FID)')
    parser.add_argument('--batch-size', type=positive_int, default=50)
    parser.add_argument('--out', default=None, type=output_file,
                        help='metrics JSON (default: <samples>_metrics.json)')
    parser.add_argument('--save-ref-stats', '--save-stats', dest='save_ref_stats', default=None,
                        type=output_file,
                        help='write the reference statistics and features here, to pass as --ref next time')
    parser.add_argument('--save-sample-stats', default=None, type=output_file,
                        help="write the samples' statistics and features")
    parser.add_argument('--use-ref-stats', action='store_true',
                        help="FID/sFID against the mu/sigma stored in --ref (the TF graph's for ADM batches)")
    parser.add_argument('--extractor', default='InceptionV3FID', help='a FEATURE_EXTRACTORS type')
    parser.add_argument('--extractor-options', nargs='+', action=DictAction, default={}, metavar='KEY=VALUE',
                        help='extra constructor arguments of the extractor')
    parser.add_argument('--custom-imports', nargs='+', default=[], help='modules that register extractors')
    parser.add_argument('--k', type=positive_int, default=3,
                        help='nearest neighbours of precision/recall (ADM: 3)')
    parser.add_argument('--split-size', type=positive_int, default=5000, help='IS split size (ADM: 5000)')
    parser.add_argument('--no-sfid', action='store_true', help='skip sFID (saves a 2023 x 2023 sqrtm)')
    parser.add_argument('--bootstrap', type=non_negative_int, default=100,
                        help="FID's interval over this many resamplings of each set's images (0: none; "
                             '4 s each at 50,000 x 2048 on 2 AVX2 cores)')
    parser.add_argument('--confidence', type=fraction, default=0.95, help='of the bootstrap interval')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--random-weights-for-tests', action='store_true',
                        help='tests only: a randomly initialised Inception; the numbers mean nothing')
    args = parser.parse_args(argv)
    args.out = args.out or osp.splitext(args.samples[0])[0] + '_metrics.json'
    problem = output_problem(args.out, folder=False)  # the default file, checked before any work
    if problem:
        parser.error(f'the metrics file (--out): {problem}')
    if args.save_sample_stats and len(args.samples) > 1:
        parser.error('--save-sample-stats keeps the statistics of one samples file; pass one, or drop it.')
    if args.bootstrap == 1:
        parser.error('--bootstrap needs at least 2 resamplings (0 turns it off).')
    if len(set(map(osp.abspath, args.samples))) < len(args.samples):
        parser.error('a samples file is named twice: each set counts once in the spread.')
    written = [p for p in (args.out, args.save_ref_stats, args.save_sample_stats) if p]
    if len({osp.abspath(p) for p in written}) < len(written):
        parser.error(f'--out, --save-ref-stats and --save-sample-stats must be different files, got '
                     f'{written}.')
    return args


def build_extractor(args):
    cfg = dict(type=args.extractor, device=args.device, **args.extractor_options)
    if args.extractor == 'InceptionV3FID':
        cfg.setdefault('weights', args.inception_weights)
        if args.random_weights_for_tests:
            cfg.update(weights=None, allow_random_init=True)
    return build_feature_extractor(cfg)


def check_npz_input(path: str, k: int) -> None:
    """Raise NpzFormatError unless ``path`` holds images (``arr_0``) or feature statistics (``mu``), and, for
    images, enough of them for precision/recall (``k`` + 1) and FID (2)."""
    arrays = npz_arrays(path)
    if 'mu' not in arrays:
        num = check_images(path, arrays)
        need = max(k + 1, 2)
        if num < need:
            raise NpzFormatError(f'{path} holds {num} images; precision/recall with k = {k} need at least '
                                 f'{k + 1} per set and FID at least 2, so nothing was computed. Use more '
                                 'images (the protocol uses 50,000), or a smaller --k.')


METRICS = ('fid', 'sfid', 'inception_score', 'precision', 'recall')


def sampling_record(path: str) -> Optional[dict]:
    """What tools/sample.py recorded beside a samples file (checkpoint, sampling settings, seed), if any."""
    record = osp.join(osp.dirname(osp.abspath(path)), PROVENANCE_FILE)
    if not osp.isfile(record):
        return None
    with open(record) as f:
        return json.load(f)


def spread(runs: List[dict]) -> dict:
    """Each metric's mean, standard deviation (over the sets, ddof 1) and range."""
    out = {}
    for key in METRICS:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = dict(mean=float(np.mean(values)), std=float(np.std(values, ddof=1)) if len(values) > 1
                            else None, min=float(min(values)), max=float(max(values)), values=values)
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    register_all_modules()
    for module in args.custom_imports:
        importlib.import_module(module)
    for path in args.samples + [args.ref]:  # every file is checked before any feature is computed
        check_npz_input(path, args.k)
    extractor = build_extractor(args)
    start = time.time()
    print(f'reference: {args.ref}', flush=True)
    ref = features_from_npz(args.ref, extractor, args.batch_size, use_stored_stats=args.use_ref_stats,
                            progress=True)
    if args.save_ref_stats:
        save_feature_set(args.save_ref_stats, ref)
        print(f'wrote {args.save_ref_stats}', flush=True)
    runs = []
    for path in args.samples:
        print(f'samples: {path}', flush=True)
        samples = features_from_npz(path, extractor, args.batch_size, progress=True)
        if args.save_sample_stats:
            save_feature_set(args.save_sample_stats, samples)
            print(f'wrote {args.save_sample_stats}', flush=True)
        metrics = evaluate_feature_sets(samples, ref, k=args.k, split_size=args.split_size,
                                        device=args.device, spatial=not args.no_sfid)
        metrics['fid_bootstrap'] = None
        if args.bootstrap and samples.pool is not None and ref.mu is not None:
            metrics['fid_bootstrap'] = fid_bootstrap(samples.pool, ref.mu, ref.sigma,
                                                     ref.pool if ref.stats_from_features else None,
                                                     replicates=args.bootstrap, confidence=args.confidence)
        metrics.update(samples=file_identity(path), sampling=sampling_record(path))
        runs.append(metrics)
        show_run(metrics)
    over_sets = spread(runs)
    result = dict(runs[0]) if len(runs) == 1 else {key: over_sets[key]['mean'] if key in over_sets else None
                                                   for key in METRICS}
    result.update(extractor.describe(), reference=file_identity(args.ref), runs=runs, spread=over_sets,
                  settings=dict(k=args.k, split_size=args.split_size, sfid=not args.no_sfid,
                                use_ref_stats=args.use_ref_stats, batch_size=args.batch_size,
                                bootstrap=args.bootstrap, confidence=args.confidence),
                  seconds=round(time.time() - start, 1))
    if len(runs) > 1:
        print(f'over {len(runs)} sample sets:')
        for key, value in result['spread'].items():
            print(f'  {key}: mean {value["mean"]:.4f}, std {value["std"]:.4f}, '
                  f'range [{value["min"]:.4f}, {value["max"]:.4f}]')
    write_json(args.out, result)
    print(f'wrote {args.out}', flush=True)
    return result


def show_run(metrics: dict) -> None:
    def show(value, digits=4):
        return 'n/a' if value is None else f'{value:.{digits}f}'

    interval = metrics.get('fid_bootstrap')
    extra = '' if not interval else (f' ({interval["confidence"]:.0%} interval over {interval["replicates"]} '
                                     f'resamplings of the images: [{show(interval["low"])}, '
                                     f'{show(interval["high"])}])')
    print(f'FID: {show(metrics["fid"])}{extra}')
    print(f'sFID: {show(metrics["sfid"])}')
    is_std = '' if metrics['inception_score'] is None else (
        f' (std over {metrics["inception_score_splits"]} splits: {show(metrics["inception_score_std"])})')
    print(f'Inception Score: {show(metrics["inception_score"])}{is_std}')
    print(f'Precision: {show(metrics["precision"])}')
    print(f'Recall: {show(metrics["recall"])}')
    for note in metrics['notes']:
        print(f'note: {note}')


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
