"""List what a checkpoint's pickle would import, without running it; re-save it as a ``weights_only`` file.

    python tools/model_converters/make_checkpoint_safe.py SRC.pth                 # inspect only
    python tools/model_converters/make_checkpoint_safe.py SRC.pth SAFE.pth        # convert if nothing runs
    python tools/model_converters/make_checkpoint_safe.py SRC.pth SAFE.pth --trust-this-file

First it reads the opcodes of SRC's pickle (``pickletools``: nothing is imported or called) and lists every
global that unpickling would import, each marked ``torch`` (on torch's weights_only allow list), ``data`` (a
plain data type that list leaves out: numpy values, a few collections and builtin types, MMEngine's
HistoryBuffer) or ``OTHER`` (anything else: unpickling imports it and may call it, i.e. it can run code).

Given SAFE.pth, it converts SRC when nothing is ``OTHER``: it reads SRC with ``torch.load(weights_only=True)``
with exactly those data types allowed, so no code of the file's runs. That covers checkpoints mmspectral wrote
before 0.2. If anything is ``OTHER`` it writes nothing unless ``--trust-this-file`` is given: then SRC is
unpickled fully (``weights_only=False``), which runs whatever code it carries; use the flag only for a file
you or your team made. SAFE.pth holds the same content as plain containers and tensors (what mmspectral's
runners write now), so ``--resume``, ``load_from`` and every tool load it without trust. Anything the file
holds that has no plain form (an object of another class) is listed and nothing is written.
"""
import argparse
import sys

import torch

from mmspectral.fileio import (CheckpointLoadError, atomic_write, load_torch_file, scan_imports, sniff,
                               to_plain)
from mmspectral.fileio.pickle_scan import describe

_LABEL = dict(torch='torch', data='data', other='OTHER')
_WHY = dict(torch="on torch's weights_only allow list", other='not a known data type: unpickling imports it '
            'and may call it')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="List what a checkpoint's pickle imports (nothing runs); re-save it as a weights_only "
        'file.')
    parser.add_argument('src', help='the checkpoint to inspect (and convert)')
    parser.add_argument('out', nargs='?', help='the safe file to write; without it SRC is only inspected')
    parser.add_argument('--trust-this-file', action='store_true',
                        help='unpickle SRC fully (weights_only=False) even though it imports globals that '
                        'are not known data types: this runs whatever code the file carries. Only for a file '
                        'you or your team made.')
    return parser.parse_args(argv)


def report(src: str) -> list:
    """Print what ``src`` is and every global its pickle would import; returns the imports."""
    fmt, what = sniff(src)
    imports = scan_imports(src)  # raises ValueError for what is not a checkpoint
    print(f'{src}: {what}. Its pickle would import {len(imports)} global(s) (read from its opcodes; nothing '
          'was imported or run):')
    for item in imports:
        why = describe(item.name) if item.kind == 'data' else _WHY[item.kind]
        print(f'  {_LABEL[item.kind]:<6} {item.name}' + (f' x{item.count}' if item.count > 1 else '')
              + f'  ({why})')
    return imports


def make_safe(src: str, out: str, trust: bool) -> int:
    """Convert ``src`` into ``out``; returns the number of tensors. Raises ValueError if objects remain.

    ``trust``: unpickle ``src`` fully; else read it with ``weights_only=True`` and its plain data types
    allowed (it raises :class:`CheckpointLoadError` if anything else is needed).
    """
    plain, left = to_plain(load_torch_file(src, trusted=trust, data_types=not trust))
    if left:
        raise ValueError(f'{src} holds objects that have no plain form, so {out} was not written: '
                         + '; '.join(left[:10]) + ('...' if len(left) > 10 else ''))
    with atomic_write(out, 'wb') as f:
        torch.save(plain, f)
    load_torch_file(out, trusted=False)  # proves it: raises if anything needs unpickling still
    tensors = [0]

    def count(obj):
        if isinstance(obj, torch.Tensor):
            tensors[0] += 1
        elif isinstance(obj, dict):
            for v in obj.values():
                count(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                count(v)
    count(plain)
    return tensors[0]


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        imports = report(args.src)
    except (ValueError, OSError) as exc:
        sys.exit(f'{exc}. Check the path: this tool reads checkpoints written by torch.save.')
    other = [i.name for i in imports if i.kind == 'other']
    if args.out is None:
        if other:
            print(f'Converting it needs --trust-this-file, which unpickles it fully and so runs '
                  f'{", ".join(other)}: only for a file you or your team made.')
        else:
            print('It converts without running anything: '
                  f'python tools/model_converters/make_checkpoint_safe.py {args.src} SAFE.pth')
        return
    if other and not args.trust_this_file:
        sys.exit(f'{args.out} was not written: {args.src} would import {", ".join(other)}, which is not '
                 'plain data, and unpickling it can run code. If you or your team made the file and you '
                 'trust it, run again with --trust-this-file (it is then unpickled fully). Never for a file '
                 'from a source you do not trust.')
    try:
        n = make_safe(args.src, args.out, trust=args.trust_this_file)
    except (ValueError, CheckpointLoadError) as exc:
        sys.exit(str(exc))
    how = ('unpickled fully, as trusted' if args.trust_this_file
           else 'read with weights_only=True; nothing ran')
    print(f'{args.src} -> {args.out} ({how}): {n} tensors; it loads with torch.load(weights_only=True).')


if __name__ == '__main__':
    main()
