import difflib
import inspect
import re
from typing import Any, FrozenSet, Mapping, Optional

import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.registry import Registry

_UNEXPECTED_RE = re.compile(r"got an unexpected keyword argument '(\w+)'")


class UnknownArgumentError(TypeError):
    """A config key that the class being built does not take; the message names close valid arguments."""


def _forwards_kwargs_to_super(init, kwargs_name: str) -> bool:
    """Whether ``init`` passes ``**kwargs_name`` on in its ``super().__init__(...)`` call."""
    try:
        src = inspect.getsource(init)
    except (OSError, TypeError):
        return False
    start = src.find('super().__init__(')
    if start < 0:
        return False
    depth, i = 0, start + len('super().__init__')
    for i in range(i, len(src)):
        depth += {'(': 1, ')': -1}.get(src[i], 0)
        if depth == 0:
            break
    return f'**{kwargs_name}' in src[start:i]


def effective_arguments(cls: Any, cfg: Mapping) -> dict:
    """``cfg`` over the defaults of ``cls`` and its parents (for the arguments that it does not set).

    What a component's ``check_config`` classmethod receives from the config checks (docs/design.md).
    """
    values = {}
    for owner in reversed([c for c in getattr(cls, '__mro__', ()) if '__init__' in c.__dict__]):
        try:
            params = inspect.signature(owner.__dict__['__init__']).parameters.values()
        except (TypeError, ValueError):
            continue
        values.update({p.name: p.default for p in params if p.default is not p.empty})
    values.update(cfg)
    return values


def named_arguments(cls: Any) -> frozenset:
    """The named keyword arguments of ``cls.__init__`` and the parents it passes ``**kwargs`` to."""
    names = set()
    for owner in [c for c in cls.__mro__ if '__init__' in c.__dict__ and c is not object]:
        try:
            params = list(inspect.signature(owner.__dict__['__init__']).parameters.values())[1:]
        except (TypeError, ValueError):
            break
        names.update(p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    return frozenset(names)


def accepted_arguments(cls: Any) -> Optional[FrozenSet[str]]:
    """The keyword arguments ``cls(...)`` takes, or None when that cannot be told (it takes ``**kwargs``).

    ``**kwargs`` that a class hands to ``super().__init__`` are resolved through the parent classes, so a
    subclass that only changes defaults (``NestedSpectralTokenizer``) is checked against its parent's
    arguments.
    """
    if not inspect.isclass(cls):
        try:
            params = inspect.signature(cls).parameters.values()
        except (TypeError, ValueError):
            return None
        if any(p.kind == p.VAR_KEYWORD for p in params):
            return None
        return frozenset(p.name for p in params if p.kind != p.VAR_POSITIONAL)
    names = set()
    mro = [c for c in cls.__mro__ if '__init__' in c.__dict__]
    for owner in mro:
        if owner in (object, nn.Module):
            return frozenset(names)
        try:
            params = list(inspect.signature(owner.__dict__['__init__']).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        names.update(p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        var_kw = [p.name for p in params if p.kind == p.VAR_KEYWORD]
        if not var_kw:
            return frozenset(names)
        if not _forwards_kwargs_to_super(owner.__dict__['__init__'], var_kw[0]):
            return None
    return frozenset(names)


def unknown_argument_message(name: str, key: str, accepted, where: str = '') -> str:
    """'<where>: <name> has no argument <key>. Did you mean ...? Its arguments: ...'."""
    close = difflib.get_close_matches(key, sorted(accepted), n=3, cutoff=0.6)
    msg = f'{where + ": " if where else ""}{name} takes no argument {key!r}.'
    if close:
        msg += ' Did you mean ' + ' or '.join(repr(c) for c in close) + '?'
    return msg + f' Its arguments: {", ".join(sorted(accepted))}. Rename or remove the key in the config.'


def _explain_unexpected_argument(exc: TypeError, cfg: dict, registry: Registry) -> Optional[TypeError]:
    """A clearer error for a ``cfg`` key that its class does not take; None if ``exc`` is something else."""
    match = _UNEXPECTED_RE.search(str(exc))
    if isinstance(exc, UnknownArgumentError) or match is None or match.group(1) not in cfg:
        return None
    cls = cfg['type'] if not isinstance(cfg['type'], str) else registry.get(cfg['type'])
    accepted = accepted_arguments(cls) if cls is not None else None
    if accepted is None or match.group(1) in accepted:
        return None  # raised deeper down, by something this config does not name
    return UnknownArgumentError(unknown_argument_message(
        getattr(cls, '__name__', str(cls)), match.group(1), accepted, f'{registry.name} config'))


def build_component(cfg: Any, registry: Registry, default_args: Optional[dict] = None,
                    expected_type: Optional[type] = None) -> Any:
    """Build ``cfg`` from ``registry``, or pass it through when it is already built.

    Args:
        cfg: a config dict with a ``type`` key, an object that is already built, or None (returned as is).
        registry: where ``type`` is looked up (mmspectral's registries report typos with close matches).
        default_args: keyword arguments used where ``cfg`` does not set them.
        expected_type: if given, the result must be an instance of it.
    """
    if cfg is None:
        return None
    if isinstance(cfg, (dict, ConfigDict)):
        if 'type' not in cfg:
            raise KeyError(f'A config for the {registry.name} registry needs a "type" key; got keys '
                           f'{sorted(cfg)}. Example: dict(type=..., ...).')
        try:
            obj = registry.build(cfg, default_args=default_args)
        except TypeError as exc:
            better = _explain_unexpected_argument(exc, cfg, registry)
            if better is None:
                raise
            raise better from None
    else:
        obj = cfg
    if expected_type is not None and not isinstance(obj, expected_type):
        raise TypeError(f'Expected a {expected_type.__name__} from the {registry.name} registry, '
                        f'got {type(obj).__name__}.')
    return obj
