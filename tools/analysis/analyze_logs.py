"""Curves and timing from training logs: MMEngine's json scalars (``<work_dir>/<timestamp>/vis_data/
scalars.json``, one record per line), several runs in one figure.

    python tools/analysis/analyze_logs.py plot_curve RUN [RUN ...] --keys loss recon/psnr [--legend a b]
        [--out curves.png] [--title TEXT]
    python tools/analysis/analyze_logs.py cal_train_time RUN [RUN ...]

A RUN is a ``scalars.json`` file or a work dir (its runs' ``scalars.json`` files are read in time order, so a
resumed run reads as one curve). ``plot_curve`` draws one panel per key, one line per run; training records
(those with ``lr``) and validation records are told apart, so ``loss`` comes from training and ``recon/psnr``
from validation. ``cal_train_time`` prints each run's mean and spread of the seconds per iteration.
"""
import argparse
import glob
import json
import os.path as osp
import statistics
import sys
from typing import Dict, List

import matplotlib.pyplot as plt

from mmspectral.cli import output_file
from mmspectral.launch import prepare


def scalar_files(run: str) -> List[str]:
    """The ``scalars.json`` files of a run (a file, or a work dir's timestamped runs in order)."""
    if osp.isfile(run):
        return [run]
    files = sorted(glob.glob(osp.join(run, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'{run} is neither a scalars.json file nor a work dir with '
                                '<timestamp>/vis_data/scalars.json; pass one of those.')
    return files


def read_records(run: str) -> List[Dict]:
    """Every record of a run; a torn last line (a run killed while writing) is skipped with a note."""
    records = []
    for path in scalar_files(run):
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    print(f'[analyze_logs] {path}:{number} is not a JSON record (a torn line?); skipped',
                          file=sys.stderr)
    return records


def curve(records: List[Dict], key: str):
    """(steps, values) of ``key``: from training records when they have it, else from validation ones.

    A validation record is placed at the iteration of the training record before it (MMEngine gives the
    validation records of an iteration-based run another step count)."""
    train, val, at = [], [], 0
    for r in records:
        if 'lr' in r:
            at = int(r.get('iter', r['step']))
            if key in r:
                train.append((at, r[key]))
        elif key in r:
            val.append((at or int(r.get('step', 0)), r[key]))
    last = {}
    for step, value in train or val:  # a resumed run repeats steps: the later record wins
        last[step] = float(value)
    steps = sorted(last)
    return steps, [last[s] for s in steps]


def short_names(runs: List[str]) -> List[str]:
    """The fewest trailing path parts that tell the runs apart (``nospectral/seed0/tokenizer`` ...)."""
    parts = [osp.normpath(run).split(osp.sep) for run in runs]
    for n in range(1, max(len(p) for p in parts) + 1):
        names = ['/'.join(p[-n:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return list(runs)


def plot_curve(args) -> None:
    runs = [read_records(run) for run in args.runs]
    legend = args.legend or short_names(args.runs)
    if len(legend) != len(runs):
        sys.exit(f'--legend has {len(legend)} names for {len(runs)} runs.')
    fig, axes = plt.subplots(1, len(args.keys), figsize=(4.2 * len(args.keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], args.keys):
        drawn = 0
        for name, records in zip(legend, runs):
            steps, values = curve(records, key)
            if steps:
                ax.plot(steps, values, marker='o' if len(steps) < 20 else None, label=name)
                drawn += 1
        if not drawn:
            known = sorted({k for records in runs for r in records for k in r} - {'step'})
            sys.exit(f'No run logged {key!r}; the logs have: {", ".join(known)}.')
        ax.set_xlabel('iteration')
        ax.set_title(key, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f'wrote {args.out}')


def cal_train_time(args) -> None:
    for run in args.runs:
        times = [float(r['time']) for r in read_records(run) if 'lr' in r and 'time' in r]
        if not times:
            print(f'{run}: no training record with a time')
            continue
        spread = statistics.pstdev(times) if len(times) > 1 else 0.0
        print(f'{run}: {statistics.fmean(times):.4f} s/iter on average (std {spread:.4f}, slowest '
              f'{max(times):.4f}, over {len(times)} logged intervals)')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Curves and timing from MMEngine json logs.')
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='loss and metric curves, several runs in one figure')
    plot.add_argument('runs', nargs='+', help='scalars.json files or work dirs')
    plot.add_argument('--keys', nargs='+', default=['loss'], help='logged keys, one panel each')
    plot.add_argument('--legend', nargs='+', default=None, help='one name per run')
    plot.add_argument('--title', default=None)
    plot.add_argument('--out', type=output_file, default='curves.png')
    timing = sub.add_parser('cal_train_time', help='seconds per iteration of each run')
    timing.add_argument('runs', nargs='+')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    prepare(plots=True)  # figures to files, whatever display there is
    {'plot_curve': plot_curve, 'cal_train_time': cal_train_time}[args.task](args)


if __name__ == '__main__':
    main()
