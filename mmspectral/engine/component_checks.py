"""What a component declares about its config, for the checks that run before a run builds anything.

mmspectral's components say it themselves, as class attributes the config checks read:

* ``path_arguments``: ``{argument: hint}`` for the arguments that name a file to read (a weight file, a
  checkpoint, reference statistics). The checks refuse a URL and a path that does not exist, and add the hint
  (say where the file comes from; an empty hint gives the general one).
* ``extra_kwargs``: the names a class that takes ``**kwargs`` accepts there (CheckpointHook: none).
* ``check_config(args, where, cfg) -> list of problems`` (models, datasets, tokenizers) and the output
  sizes datasets and transforms declare (:func:`mmspectral.datasets.transforms.output_size_rule`).

Classes from MMEngine cannot declare anything, so the few that need it are described here, keyed by the class
(subclasses included): :data:`FOREIGN_PATH_ARGUMENTS` and the ``**kwargs`` rules that
:func:`extra_kwargs_accepted` falls back on.
"""
import inspect
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional

from mmengine.hooks import EMAHook
from mmengine.model import MMSeparateDistributedDataParallel
from mmengine.model.weight_init import PretrainedInit
from torch.nn.parallel import DistributedDataParallel

from mmspectral.utils.build import accepted_arguments, named_arguments

__all__ = ['FOREIGN_PATH_ARGUMENTS', 'path_arguments', 'extra_kwargs_accepted']

#: MMEngine classes whose arguments name a file (``init_cfg=dict(type='Pretrained', checkpoint=PATH)``).
FOREIGN_PATH_ARGUMENTS: Dict[type, Dict[str, str]] = {PretrainedInit: {'checkpoint': ''}}


def path_arguments(cls: Any) -> Mapping[str, str]:
    """``{argument: hint}`` for the arguments of ``cls`` that name a file to read; empty when none."""
    if not inspect.isclass(cls):
        return {}
    declared = getattr(cls, 'path_arguments', None)
    if declared is not None:
        return declared
    for base, arguments in FOREIGN_PATH_ARGUMENTS.items():
        if issubclass(cls, base):
            return arguments
    return {}


def _ema_hook_kwargs(cls: type, node: Mapping, resolve: Callable[[Any, str], Any]) -> Optional[FrozenSet]:
    # EMAHook's **kwargs go to its ``ema_type`` class (all but ``model``, which the hook passes itself)
    ema_cls = resolve(node.get('ema_type', 'ExponentialMovingAverage'), 'model')
    ema = accepted_arguments(ema_cls) if ema_cls is not None else None
    return None if ema is None else named_arguments(cls) | (ema - {'model'})


def _separate_ddp_kwargs(cls: type, node: Mapping, resolve: Callable[[Any, str], Any]) -> FrozenSet:
    # MMSeparateDistributedDataParallel's **kwargs go to DistributedDataParallel around each part
    return named_arguments(cls) | (named_arguments(DistributedDataParallel) - {'module'})


_FOREIGN_EXTRA_KWARGS = {EMAHook: _ema_hook_kwargs, MMSeparateDistributedDataParallel: _separate_ddp_kwargs}


def extra_kwargs_accepted(cls: Any, node: Mapping,
                          resolve: Callable[[Any, str], Any]) -> Optional[FrozenSet]:
    """What a class that takes ``**kwargs`` accepts, where it can be told; None where it cannot.

    ``node`` is the class's config; ``resolve(type, context)`` finds the class a ``type`` names.
    """
    if not inspect.isclass(cls):
        return None
    extra = getattr(cls, 'extra_kwargs', None)
    if extra is not None:
        return named_arguments(cls) | frozenset(extra)
    for base, rule in _FOREIGN_EXTRA_KWARGS.items():
        if issubclass(cls, base):
            return rule(cls, node, resolve)
    return None
