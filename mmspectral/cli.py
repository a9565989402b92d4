"""Command-line options the tools share that must be parsed before torch loads (no torch import here).

The argument types below check a value while the command line is parsed, so that a tool refuses a bad
argument before it loads a model or writes anything: argparse then prints ``argument --batch-size: must be an
integer >= 1, got '0'`` with the usage line and exits with status 2.
"""
import argparse
import math
import os
import os.path as osp
import re
from typing import Callable, Optional

__all__ = ['add_trust_arg', 'TRUST_HELP', 'bounded', 'positive_int', 'non_negative_int', 'positive_float',
           'non_negative_float', 'fraction', 'existing_file', 'existing_path', 'output_folder', 'output_file',
           'output_problem', 'add_sampling_args', 'sampling_options', 'is_hub_id', 'add_model_args',
           'check_model_args', 'MODEL_FOLDER_RECORD']

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


# ------------------------------------------------------------------------------------------ sampling
def add_sampling_args(parser) -> None:
    """The sampling options every sampling tool takes; unset ones keep the config's ``model.sampling``.
    Each is checked as it is parsed; ``--num-tokens`` against the model by ``model.sampling_options``."""
    parser.add_argument('--cfg', type=non_negative_float, default=None,
                        help='guidance weight >= 0 (default: the config)')
    parser.add_argument('--cfg-schedule', choices=['linear', 'constant'], default=None)
    parser.add_argument('--top-k', type=non_negative_int, default=None, help='0: no top-k filtering')
    parser.add_argument('--top-p', type=fraction, default=None, help='in [0, 1]; 0: no nucleus filtering')
    parser.add_argument('--temperature', type=positive_float, default=None)
    parser.add_argument('--num-tokens', type=positive_int, default=None,
                        help='truncated generation: the first N tokens')


def sampling_options(args) -> dict:
    """``generate`` keyword arguments from parsed command-line options; None leaves the config's value."""
    names = (('cfg_scale', 'cfg'), ('cfg_schedule', 'cfg_schedule'), ('top_k', 'top_k'), ('top_p', 'top_p'),
             ('temperature', 'temperature'), ('num_tokens', 'num_tokens'))
    return {key: getattr(args, attr) for key, attr in names if getattr(args, attr, None) is not None}


# ------------------------------------------------------------------------------------------ models
#: the record every model folder holds (mmspectral.apis.save_pretrained writes it)
MODEL_FOLDER_RECORD = 'mmspectral_model.json'
_HUB_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$')


def is_hub_id(text) -> bool:
    """Whether ``text`` reads as a hub repository id ('org/name') rather than a local path: it matches the
    hub's spelling, is not an existing file or folder, and names no config or checkpoint file."""
    return (isinstance(text, str) and bool(_HUB_ID.match(text)) and not osp.exists(text)
            and not text.endswith(('.py', '.pth', '.pt', '.json', '.safetensors')))


def add_model_args(parser: argparse.ArgumentParser, kind: str = 'generator') -> None:
    """The positional ``model`` (a model folder, a hub id, or a config) and ``checkpoint`` (with a config
    only) that the tools taking a trained model share; check them with :func:`check_model_args`."""
    parser.add_argument('model', metavar='MODEL',
                        help=f'{kind} model folder (tools/model_converters/publish_model.py, the quick '
                             f"start's work_dirs/quickstart/models/{kind}), hub id 'org/name', or config")
    parser.add_argument('checkpoint', nargs='?', default=None, metavar='CHECKPOINT',
                        help='the checkpoint training wrote (with a config only)')


def check_model_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One line, before any model loads, for a model argument that cannot work: a path that does not
    exist, a folder that is no model folder, a config without its checkpoint, a folder or hub id with one."""
    model, checkpoint = args.model, args.checkpoint
    if osp.isdir(model):
        if not osp.lexists(osp.join(model, MODEL_FOLDER_RECORD)):
            parser.error(f'{model} is a folder but no model folder (it has no {MODEL_FOLDER_RECORD}); pass a '
                         'folder written by tools/model_converters/publish_model.py, or a config and its '
                         'checkpoint.')
        if checkpoint is not None:
            parser.error(f'{model} is a model folder, which holds its weights: drop {checkpoint}.')
    elif osp.isfile(model):
        if checkpoint is None:
            parser.error(f'{model} is a config: pass the checkpoint training wrote after it (or a model '
                         'folder instead of the config).')
        try:
            existing_file(checkpoint)
        except argparse.ArgumentTypeError as exc:
            parser.error(f'checkpoint {exc}')
    elif is_hub_id(model):
        if checkpoint is not None:
            parser.error(f'{model} is read as a hub id (no such local file or folder), which holds its '
                         f'weights: drop {checkpoint}, or give the path of a local config.')
    else:
        parser.error(f'{model} does not exist (neither a model folder, a config nor a hub id org/name).')
