"""Every registry of mmspectral, in one place.

Two kinds live here:

* children of MMEngine's root registries, for what the Runner builds (models, datasets, transforms, metrics,
  hooks, loops, ...). With ``default_scope='mmspectral'`` the Runner looks in these first and falls back to
  MMEngine's own classes;
* domain registries for the parts a researcher swaps in an ablation: tokenizers, quantizers, token-frequency
  schedules, attention masks, generators, and the feature extractors of the generative metrics (FID, IS,
  precision, recall). Build them with :func:`mmspectral.utils.build_component`, which takes a config dict or
  an object that is already built.

An unknown ``type`` raises :class:`RegistryKeyError`, which names the registry and the registered types
closest to the typo (see :func:`explain_missing_key`).
"""
import difflib
import re
from contextlib import contextmanager
from typing import Iterator, List, Optional

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry


class RegistryKeyError(KeyError):
    """A ``type`` that no registry knows. ``str()`` gives the plain message (KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


def _visible_keys(registry: Registry) -> List[str]:
    """Names a lookup in ``registry`` can resolve: its own, its ancestors' and (for a root) its children's."""
    keys = set(registry.module_dict)
    parent = registry.parent
    while parent is not None:
        keys.update(parent.module_dict)
        parent = parent.parent
    stack = list(registry.children.values())
    while stack:
        child = stack.pop()
        keys.update(child.module_dict)
        stack.extend(child.children.values())
    return sorted(keys)


def explain_missing_key(key: str, registry: Registry) -> str:
    """The message for an unknown ``type``: the registry, the closest registered names, and what to do."""
    keys = _visible_keys(registry)
    lowered = {k.lower(): k for k in keys}
    close = difflib.get_close_matches(key, keys, n=5, cutoff=0.6)
    if key.lower() in lowered and lowered[key.lower()] not in close:
        close.insert(0, lowered[key.lower()])
    where = f'{registry.scope}::{registry.name}'
    msg = f"type='{key}' is not registered in the {where} registry."
    if close:
        msg += ' Did you mean: ' + ', '.join(repr(c) for c in close) + '?'
    else:
        shown = ', '.join(keys[:30]) + (' ...' if len(keys) > 30 else '')
        msg += f' Registered types: {shown}.'
    constant = _constant_name(registry)
    msg += (f' If it is a component of your own, decorate it with @{constant}.register_module() '
            f'(from mmspectral.registry import {constant}) in your file and import that file from the '
            "config: custom_imports = dict(imports=['my_module']) (see docs/add_component.md).")
    return msg


def _constant_name(registry: Registry) -> str:
    """The name of the mmspectral registry constant that holds (or is the child of) ``registry``."""
    for name, value in globals().items():
        if name.isupper() and isinstance(value, Registry) and (
                value is registry or (value.parent is registry and value.scope == 'mmspectral')):
            return name
    return '<REGISTRY>'


_MISSING_RE = re.compile(r"(?P<key>\S+) is not in the (?:(?P<scope>[\w.]+)::)?(?P<name>[\w ]+?) registry")


def _find_registry(scope: Optional[str], name: str) -> Optional[Registry]:
    for reg in ALL_REGISTRIES:
        if reg.name == name and (scope is None or reg.scope == scope):
            return reg
    for reg in _MMENGINE_ROOTS:
        if reg.name == name:
            if scope in (None, reg.scope):
                return reg
            return reg.children.get(scope, reg)
    return None


def enrich_registry_error(exc: BaseException) -> Optional[RegistryKeyError]:
    """Turn MMEngine's 'X is not in the scope::name registry' KeyError into one with close matches.

    Returns None when ``exc`` is not such an error.
    """
    if isinstance(exc, RegistryKeyError) or not isinstance(exc, KeyError) or not exc.args:
        return None
    match = _MISSING_RE.search(str(exc.args[0]))
    if match is None:
        return None
    registry = _find_registry(match.group('scope'), match.group('name'))
    if registry is None:
        return None
    return RegistryKeyError(explain_missing_key(match.group('key'), registry))


@contextmanager
def registry_hints() -> Iterator[None]:
    """Re-raise unknown-``type`` errors from any registry with the closest registered names."""
    try:
        yield
    except KeyError as exc:
        better = enrich_registry_error(exc)
        if better is None:
            raise
        raise better from None


class SpectralRegistry(Registry):
    """A Registry whose ``build`` reports an unknown ``type`` with the closest registered names."""

    def build(self, cfg, *args, **kwargs):
        with registry_hints():
            return super().build(cfg, *args, **kwargs)


def _child(name: str, parent: Registry, location: str) -> SpectralRegistry:
    return SpectralRegistry(name, parent=parent, scope='mmspectral', locations=[location])


# --- children of MMEngine's roots (what the Runner builds) ---
RUNNERS = _child('runner', MMENGINE_RUNNERS, 'mmspectral.engine')
LOOPS = _child('loop', MMENGINE_LOOPS, 'mmspectral.engine')
HOOKS = _child('hook', MMENGINE_HOOKS, 'mmspectral.engine')
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS, 'mmspectral.engine')
STRATEGIES = _child('strategy', MMENGINE_STRATEGIES, 'mmspectral.engine')
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, 'mmspectral.engine')
OPTIM_WRAPPERS = _child('optim_wrapper', MMENGINE_OPTIM_WRAPPERS, 'mmspectral.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor', MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                    'mmspectral.engine')
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS, 'mmspectral.engine')
LOG_PROCESSORS = _child('log_processor', MMENGINE_LOG_PROCESSORS, 'mmspectral.engine')
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, 'mmspectral.models')  # the FSDP wrap policy
WEIGHT_INITIALIZERS = _child('weight initializer', MMENGINE_WEIGHT_INITIALIZERS, 'mmspectral.models')
DATASETS = _child('dataset', MMENGINE_DATASETS, 'mmspectral.datasets')
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, 'mmspectral.datasets')
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, 'mmspectral.datasets')
MODELS = _child('model', MMENGINE_MODELS, 'mmspectral.models')
METRICS = _child('metric', MMENGINE_METRICS, 'mmspectral.evaluation')
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR, 'mmspectral.evaluation')
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, 'mmspectral.engine')
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS, 'mmspectral.engine')

# --- domain registries (the swappable parts of SpectralAR) ---
TOKENIZERS = SpectralRegistry('tokenizer', scope='mmspectral', locations=['mmspectral.models'])
QUANTIZERS = SpectralRegistry('quantizer', scope='mmspectral', locations=['mmspectral.models'])
FREQ_SCHEDULES = SpectralRegistry('freq_schedule', scope='mmspectral', locations=['mmspectral.spectral'])
ATTN_MASKS = SpectralRegistry('attn_mask', scope='mmspectral', locations=['mmspectral.models'])
GENERATORS = SpectralRegistry('generator', scope='mmspectral', locations=['mmspectral.models'])
FEATURE_EXTRACTORS = SpectralRegistry('feature_extractor', scope='mmspectral',
                                      locations=['mmspectral.evaluation.generative'])

ALL_REGISTRIES = (RUNNERS, LOOPS, HOOKS, MODEL_WRAPPERS, STRATEGIES, OPTIMIZERS, OPTIM_WRAPPERS,
                  OPTIM_WRAPPER_CONSTRUCTORS, PARAM_SCHEDULERS, LOG_PROCESSORS, FUNCTIONS,
                  WEIGHT_INITIALIZERS, DATASETS, DATA_SAMPLERS, TRANSFORMS, MODELS, METRICS, EVALUATOR,
                  VISUALIZERS, VISBACKENDS, TOKENIZERS, QUANTIZERS, FREQ_SCHEDULES, ATTN_MASKS, GENERATORS,
                  FEATURE_EXTRACTORS)
_MMENGINE_ROOTS = tuple(reg.parent for reg in ALL_REGISTRIES if reg.parent is not None)
