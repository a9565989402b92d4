"""Loading a trained tokenizer out of a TokenizerModel checkpoint (for token extraction and decoding), and
settling a model config's value range on its tokenizer."""
import warnings
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from mmspectral.fileio import SAME_ARCHITECTURE, load_state_dict_checked, read_state_dict
from mmspectral.registry import MODELS, TOKENIZERS
from mmspectral.utils import build_component
from mmspectral.utils.build import accepted_arguments
from mmspectral.utils.value_range import UNIT_RANGE, check_value_range
from ..data_preprocessor import ImageDataPreprocessor

#: Where a model config held the tokenizer's value range before the tokenizer owned it, by model type.
LEGACY_VALUE_RANGE_KEYS = {'TokenizerModel': (('data_preprocessor', 'value_range'),
                                              ('perceptual_loss', 'value_range')),
                           'GeneratorModel': (('image_value_range',), ('data_preprocessor', 'value_range'))}


def tokenizer_value_range(tokenizer: Union[Mapping, nn.Module, None]) -> Tuple[float, float]:
    """The value range of a tokenizer config (its ``value_range``; [0, 1] when it sets none) or module."""
    if tokenizer is None:
        return UNIT_RANGE
    if isinstance(tokenizer, nn.Module):
        return check_value_range(getattr(tokenizer, 'value_range', UNIT_RANGE), type(tokenizer).__name__)
    value = tokenizer.get('value_range')
    return UNIT_RANGE if value is None else check_value_range(value, 'model.tokenizer')


def adopt_value_range(tokenizer: Union[Mapping, nn.Module, None], others: Mapping[str, Any]):
    """Settle the value range on the tokenizer: ``(tokenizer, value_range)``.

    ``others`` maps config keys that used to carry the range (``model.data_preprocessor.value_range``,
    ``model.perceptual_loss.value_range``, ``model.image_value_range``) to their values (None: not set). A
    tokenizer config that sets no range adopts the first one given (with a DeprecationWarning), so older
    configs and model folders keep their meaning; any value that differs from the tokenizer's is refused with
    a ValueError that names both.
    """
    given = {where: check_value_range(value, where) for where, value in others.items() if value is not None}
    if tokenizer is None:  # nothing to decode with: the range matters nowhere
        return None, next(iter(given.values()), UNIT_RANGE)
    own_set = isinstance(tokenizer, nn.Module) or tokenizer.get('value_range') is not None
    if given and not own_set:
        where, value = next(iter(given.items()))
        warnings.warn(f'{where} is deprecated: the tokenizer owns its value range. Set '
                      f'model.tokenizer.value_range={value} and remove {where} (the data preprocessor and '
                      'the perceptual loss take it from the tokenizer).', DeprecationWarning, stacklevel=3)
        tokenizer = dict(tokenizer, value_range=value)
    own = tokenizer_value_range(tokenizer)
    for where, value in given.items():
        if value != own:
            raise ValueError(f"{where}={value} differs from the tokenizer's value_range={own}. Set "
                             'model.tokenizer.value_range only: the data preprocessor and the perceptual '
                             'loss take it from there.')
    return tokenizer, own


def range_of(component) -> Optional[Sequence[float]]:
    """The ``value_range`` a component config (or a built component) sets, if any."""
    if isinstance(component, Mapping):
        return component.get('value_range')
    return getattr(component, 'value_range', None)


def with_value_range(component, value_range):
    """A config of a component that takes the tokenizer's value range (the image preprocessor, a perceptual
    loss), with it set; anything else as it is."""
    if not isinstance(component, Mapping):
        return component
    kind = component.get('type')
    cls = MODELS.get(kind) if isinstance(kind, str) else kind
    takes = isinstance(cls, type) and (issubclass(cls, ImageDataPreprocessor)
                                       or 'value_range' in (accepted_arguments(cls) or ()))
    return dict(component, value_range=tuple(value_range)) if takes else component


def settle_value_range(model_cfg: Mapping) -> dict:
    """A TokenizerModel / GeneratorModel config (a copy) whose tokenizer carries the value range and whose
    legacy keys (:data:`LEGACY_VALUE_RANGE_KEYS`) are gone; conflicting values are refused
    (:func:`adopt_value_range`). Other configs come back as they are."""
    cfg = model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg)
    keys = LEGACY_VALUE_RANGE_KEYS.get(cfg.get('type'))
    if not keys or cfg.get('tokenizer') is None:
        return cfg
    others = {}
    for path in keys:
        parent = cfg if len(path) == 1 else cfg.get(path[0])
        if isinstance(parent, Mapping) and parent.get(path[-1]) is not None:
            others['model.' + '.'.join(path)] = parent[path[-1]]
    cfg['tokenizer'], _ = adopt_value_range(cfg['tokenizer'], others)
    for path in keys:
        if len(path) == 1:
            cfg.pop(path[0], None)
        elif isinstance(cfg.get(path[0]), Mapping):
            cfg[path[0]] = {k: v for k, v in cfg[path[0]].items() if k != path[-1]}
    return cfg


def load_tokenizer(tokenizer: Union[dict, nn.Module], checkpoint: Optional[str] = None,
                   prefix: str = 'tokenizer.', device: Union[str, torch.device, None] = None) -> nn.Module:
    """Build a tokenizer (config or module) and load its weights from a TokenizerModel checkpoint.

    The checkpoint is one the Runner wrote, loaded with ``weights_only=True`` (a file that needs full
    unpickling loads only when named in ``trust_files`` / ``--trust-checkpoint`` / ``trust_checkpoints``).
    Its ``state_dict`` holds the EMA weights when training used EMAHook. Keys under ``prefix`` are
    taken; a plain tokenizer state dict (no prefix) works too. The tokenizer is returned frozen and in eval
    mode.
    """
    model = build_component(tokenizer, TOKENIZERS)
    if checkpoint is not None:
        state = read_state_dict(checkpoint, prefix=prefix)
        # a tokenizer built without its pixel decoder ignores the one the checkpoint holds
        ignored = ('pixel_decoder.*', ) if getattr(model, 'pixel_decoder', None) is None else ()
        load_state_dict_checked(model, state, checkpoint, type(model).__name__, SAME_ARCHITECTURE,
                                noun='checkpoint', ignore_unexpected=ignored)
    model.requires_grad_(False)
    model.eval()
    return model.to(device) if device is not None else model
