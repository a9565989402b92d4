from typing import Any, Optional

from mmengine.config import ConfigDict
from mmengine.registry import Registry


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
        obj = registry.build(cfg, default_args=default_args)
    else:
        obj = cfg
    if expected_type is not None and not isinstance(obj, expected_type):
        raise TypeError(f'Expected a {expected_type.__name__} from the {registry.name} registry, '
                        f'got {type(obj).__name__}.')
    return obj
