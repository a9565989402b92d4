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
import statistics
import sys

import matplotlib.pyplot as plt

from mmspectral.analysis.logs import curve, read_records, short_names
from mmspectral.cli import output_file
from mmspectral.launch import prepare


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
