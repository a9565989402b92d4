"""Re-save a checkpoint that needs full unpickling as one that loads with ``torch.load(weights_only=True)``.

    python tools/model_converters/make_checkpoint_safe.py OLD.pth SAFE.pth

For checkpoints you or your team wrote with mmspectral before 0.2 (they pickle MMEngine's HistoryBuffer and
numpy values). Reading OLD.pth unpickles it fully, which runs any code it carries: never run this on a file
from a source you do not trust. SAFE.pth holds the same content as plain containers and tensors (what
mmspectral's runners write now), so resuming from it, ``load_from`` and every tool load it without trust.
Anything else the file holds (an object of another class) is listed and the tool stops without writing.
"""
import argparse
import sys

import torch

from mmspectral.fileio import atomic_write, load_torch_file, to_plain


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Checkpoint that needs full unpickling -> a weights_only one.')
    parser.add_argument('src', help='the checkpoint to convert (it is unpickled fully: trusted files only)')
    parser.add_argument('out', help='the file to write')
    return parser.parse_args(argv)


def make_safe(src: str, out: str) -> int:
    """Convert ``src`` into ``out``; returns the number of tensors. Raises ValueError if objects remain."""
    plain, left = to_plain(load_torch_file(src, trusted=True))
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
        n = make_safe(args.src, args.out)
    except ValueError as exc:
        sys.exit(str(exc))
    print(f'{args.src} -> {args.out}: {n} tensors; it loads with torch.load(weights_only=True).')


if __name__ == '__main__':
    main()
