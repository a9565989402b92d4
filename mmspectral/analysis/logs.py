"""Training logs as data: MMEngine's json scalars (``<work_dir>/<timestamp>/vis_data/scalars.json``, one
record per line), for tools/analysis/analyze_logs.py and the studies that read their runs' curves.

A run is a ``scalars.json`` file or a work dir, whose runs' files are read in time order, so that a resumed
run reads as one curve.
"""
import glob
import json
import os.path as osp
import sys
from typing import Dict, List

__all__ = ['scalar_files', 'read_records', 'curve', 'short_names']


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
