import datetime
import warnings

from mmengine import DefaultScope

import mmspectral.datasets  # noqa: F401  (each import registers that subpackage's components)
import mmspectral.engine  # noqa: F401
import mmspectral.evaluation  # noqa: F401
import mmspectral.models  # noqa: F401
import mmspectral.spectral  # noqa: F401


def register_all_modules(init_default_scope: bool = True) -> None:
    """Make every component registered, so configs can name them by ``type`` (importing ``mmspectral.apis``
    already imports every subpackage that registers one).

    Args:
        init_default_scope: also make ``mmspectral`` the current default scope, so that the Runner looks in
            mmspectral's registries first. If another scope is current, a new instance is created under a
            unique name and a warning says so.
    """
    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('mmspectral'):
        DefaultScope.get_instance('mmspectral', scope_name='mmspectral')
    elif current.scope_name != 'mmspectral':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "mmspectral"; '
                      '`register_all_modules` makes a new default scope for mmspectral.')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S.%f')
        DefaultScope.get_instance(f'mmspectral-{stamp}', scope_name='mmspectral')
