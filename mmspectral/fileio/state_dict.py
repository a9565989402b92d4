"""Reading a state dict from a weights file and loading it into a module with every name and shape checked.

The one place where mmspectral reads weights into a network: the perceptual losses, the FID Inception network,
a feature extractor's checkpoint, the MaskGIT-VQGAN teacher, a tokenizer checkpoint for stage 2, token
extraction and sampling, and the pre-run check of the checkpoint a Runner is about to load. All report a
mismatch the same way: the shape mismatches, the keys missing from the file and the keys the model does not
have, each with a count and the first few names, then what to do.
"""
import fnmatch
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .weights import CheckpointLoadError, load_torch_file

__all__ = ['StateDictDiff', 'diff_state_dict', 'read_state_dict', 'load_state_dict_checked',
           'SAME_ARCHITECTURE']

SAME_ARCHITECTURE = ('Is it a checkpoint of the same architecture (same arch / width / depth / num_tokens / '
                     'codebook_size as the config)?')

Shape = Tuple[int, ...]
_SHOWN = 12


def _shown(items: Sequence[str]) -> str:
    more = f' ... ({len(items) - _SHOWN} more)' if len(items) > _SHOWN else ''
    return ', '.join(items[:_SHOWN]) + more


class StateDictDiff(NamedTuple):
    """How a state dict differs from a model's: names only one side has, and names whose shapes differ."""
    missing: List[str]  # in the model, not in the file
    unexpected: List[str]  # in the file, not in the model
    mis_shaped: List[Tuple[str, Shape, Shape]]  # (name, shape in the file, shape in the model)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mis_shaped)

    def describe(self, noun: str = 'file') -> str:
        """One line: ``'2 shape mismatches: a: file [3] vs model [4], ...; 1 missing from the file: c; ...'``.

        ``noun`` names the other side (``'file'``, ``'checkpoint'``).
        """
        shapes = [f'{k}: {noun} {list(theirs)} vs model {list(ours)}' for k, theirs, ours in self.mis_shaped]
        parts = [f'{len(items)} {title}: {_shown(items)}'
                 for title, items in (('shape mismatches', shapes),
                                      (f'missing from the {noun}', self.missing),
                                      ('not in the model', self.unexpected)) if items]
        return '; '.join(parts)


def _with_metadata(new: Dict[str, Any], old: Mapping[str, Any], prefix: str = '') -> Dict[str, Any]:
    """``new`` carrying ``old``'s ``_metadata`` (module versions that ``load_state_dict`` reads),
    re-prefixed."""
    metadata = getattr(old, '_metadata', None)
    new = OrderedDict(new)
    if metadata is not None and not prefix:
        new._metadata = metadata
    elif metadata is not None:
        root = prefix.rstrip('.')
        new._metadata = OrderedDict(('' if k == root else k[len(prefix):], v) for k, v in metadata.items()
                                    if k == root or k.startswith(prefix))
    return new


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def diff_state_dict(own: Mapping[str, torch.Tensor], state: Mapping[str, Any],
                    ignore_missing: Sequence[str] = (),
                    ignore_unexpected: Sequence[str] = ()) -> StateDictDiff:
    """Compare ``state`` (a file's) with ``own`` (a model's ``state_dict()`` or any name -> tensor mapping).

    ``ignore_missing`` / ``ignore_unexpected`` are ``fnmatch`` patterns (``'classifier.*'``,
    ``'*.num_batches_tracked'``) of names that may be absent from the file / present in it without a model
    counterpart. The missing and unexpected names are sorted (read like an index); the shape mismatches keep
    the model's order, so the first layer that differs comes first.
    """
    missing = sorted(k for k in own if k not in state and not _matches(k, ignore_missing))
    unexpected = sorted(k for k in state if k not in own and not _matches(k, ignore_unexpected))
    mis_shaped = [(k, tuple(getattr(state[k], 'shape', ())), tuple(v.shape)) for k, v in own.items()
                  if k in state and tuple(getattr(state[k], 'shape', ())) != tuple(v.shape)]
    return StateDictDiff(missing, unexpected, mis_shaped)


def read_state_dict(path: str, trusted: Optional[bool] = None, unwrap: bool = True,
                    prefix: Optional[str] = None, mmap: bool = False) -> Dict[str, Any]:
    """The state dict held by the weights or checkpoint file ``path`` (read by :func:`load_torch_file`).

    Args:
        path: a local file.
        trusted: as :func:`load_torch_file` (None: trusted only if named in ``trust_files``).
        unwrap: take the file's ``'state_dict'`` entry when it has one (a Runner checkpoint); False: the file
            must be the state dict itself.
        prefix: keep only the names starting with it, without it (``'tokenizer.'`` takes a tokenizer out of a
            Runner checkpoint of the algorithm); a state dict with no such name is returned whole.
        mmap: as :func:`load_torch_file` (for checks of names and shapes that need not read the tensors).
    """
    state = load_torch_file(path, map_location='cpu', trusted=trusted, mmap=mmap)
    if unwrap and isinstance(state, Mapping) and 'state_dict' in state:
        state = state['state_dict']
    if not isinstance(state, Mapping):
        raise CheckpointLoadError(
            f'{path} holds a {type(state).__name__}, not a state dict (a mapping from parameter names to '
            f"tensors{', possibly under state_dict' if unwrap else ''}). Re-save it with "
            'torch.save(model.state_dict(), path).')
    if prefix and any(k.startswith(prefix) for k in state):
        return _with_metadata({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                              state, prefix)
    return _with_metadata(state, state)


def load_state_dict_checked(target: Union[nn.Module, Mapping[str, torch.Tensor]], state: Mapping[str, Any],
                            source: str, what: str, fix: str, noun: str = 'file',
                            ignore_missing: Sequence[str] = (),
                            ignore_unexpected: Sequence[str] = ()) -> None:
    """Load ``state`` into ``target`` after checking every name and shape; on any mismatch load nothing and
    raise.

    Args:
        target: a module, or a mapping of the file's names to the model's tensors (for a file whose naming
            differs from the module's); the tensors are copied into in place.
        state: the file's state dict (:func:`read_state_dict`).
        source: the file, as the message names it (a path, ``'load_from /x.pth'``).
        what: the model, as the message names it (``'MaskGITVQGAN(vqgan)'``).
        fix: the sentence that says what to do.
        noun: what the message calls the file (``'file'``, ``'checkpoint'``).
        ignore_missing, ignore_unexpected: as :func:`diff_state_dict`; ignored missing names keep the model's
            values, ignored unexpected ones are not loaded.

    Raises:
        CheckpointLoadError: ``'{source} does not fit {what}: {the differences}. {fix}'``.
    """
    own = target.state_dict() if isinstance(target, nn.Module) else target
    diff = diff_state_dict(own, state, ignore_missing, ignore_unexpected)
    if diff:
        raise CheckpointLoadError(f'{source} does not fit {what}: {diff.describe(noun)}. {fix}')
    present = _with_metadata({k: v for k, v in state.items() if k in own}, state)
    if isinstance(target, nn.Module):
        target.load_state_dict(present, strict=not ignore_missing)
    else:
        with torch.no_grad():
            for key, value in present.items():
                target[key].copy_(value)
