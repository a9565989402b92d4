"""Command-line options the tools share that must be parsed before torch loads (no torch import here).

The argument types below check a value while the command line is parsed, so that a tool refuses a bad
argument before it loads a model or writes anything: argparse then prints ``argument --batch-size: must be an
integer >= 1, got '0'`` with the usage line and exits with status 2.
"""
import argparse
import math
import os
import os.path as osp
from typing import Callable, Optional

__all__ = ['add_trust_arg', 'TRUST_HELP', 'bounded', 'positive_int', 'non_negative_int', 'positive_float',
           'non_negative_float', 'fraction', 'existing_file', 'existing_path', 'output_folder', 'output_file',
           'output_problem']

TRUST_HELP = ('load this checkpoint with full unpickling (weights_only=False), which runs any code it '
              'carries: only for a file you or your team wrote that needs it (one written by another '
              'codebase or by mmspectral before 0.2); repeat for several files. Every other file loads with '
              'weights_only=True.')


def add_trust_arg(parser: argparse.ArgumentParser) -> None:
    """``--trust-checkpoint PATH`` (repeatable), the tools' one way to opt in to full unpickling."""
    parser.add_argument('--trust-checkpoint', action='append', default=[], metavar='PATH', help=TRUST_HELP)


# ------------------------------------------------------------------------------------------ argument types
def bounded(cast: Callable = int, low: Optional[float] = None, high: Optional[float] = None,
            low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: the text as ``cast`` (int or float; finite), at least ``low`` (above it with
    ``low_open``) and at most ``high`` (below it with ``high_open``)."""
    noun = 'an integer' if cast is int else 'a finite number'
    limits = ([f'> {low}' if low_open else f'>= {low}'] if low is not None else []) + (
        [f'< {high}' if high_open else f'<= {high}'] if high is not None else [])
    wanted = f'{noun} {" and ".join(limits)}'.strip() if limits else noun

    def check(text: str):
        try:
            value = cast(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f'must be {wanted}, got {text!r}') from None
        if not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low)) or (
                high is not None and (value >= high if high_open else value > high)):
            raise argparse.ArgumentTypeError(f'must be {wanted}, got {text!r}')
        return value

    check.__name__ = wanted  # what argparse would name in its own messages
    return check


positive_int = bounded(int, 1)
non_negative_int = bounded(int, 0)
positive_float = bounded(float, 0, low_open=True)
non_negative_float = bounded(float, 0)
fraction = bounded(float, 0, 1)


def existing_file(text: str) -> str:
    """An argparse ``type``: a file that exists (a checkpoint, a config, an npz)."""
    if not osp.isfile(text):
        why = 'is a folder, not a file' if osp.isdir(text) else 'does not exist'
        raise argparse.ArgumentTypeError(f'{text} {why}')
    return text


def existing_path(text: str) -> str:
    """An argparse ``type``: a file or folder that exists (a model folder or a config)."""
    if not osp.exists(text):
        raise argparse.ArgumentTypeError(f'{text} does not exist')
    return text


def output_problem(path: str, folder: bool) -> Optional[str]:
    """Why ``path`` cannot be written as an output folder (``folder``) or file, or None: it is the other kind
    of thing already, a file stands where one of its parent folders would be, or the folder it would be made
    in is not writable. Looks only; creates nothing."""
    if not path:
        return 'is an empty path'
    if osp.lexists(path):
        if folder and not osp.isdir(path):
            return f'{path} is an existing file, not a folder; give a folder (it is created if missing)'
        if not folder and osp.isdir(path):
            return f'{path} is an existing folder; give a file name (for example {osp.join(path, "out")})'
        where = path if folder else osp.dirname(osp.abspath(path))
        return None if os.access(where, os.W_OK) else f'{where} is not writable'
    parent = osp.dirname(osp.abspath(path))
    while not osp.lexists(parent):
        parent = osp.dirname(parent)
    if not osp.isdir(parent):
        return f'{path} cannot be created: {parent} is a file, not a folder'
    if not os.access(parent, os.W_OK):
        return f'{path} cannot be created: {parent} is not writable'
    return None


def output_folder(text: str) -> str:
    """An argparse ``type``: a folder the tool may create or add to (checked, not created)."""
    problem = output_problem(text, folder=True)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def output_file(text: str) -> str:
    """An argparse ``type``: a file the tool may write (checked, not created)."""
    problem = output_problem(text, folder=False)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text
