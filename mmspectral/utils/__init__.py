"""Ground-level helpers (building a component from a config or an object, value checks, timing); nothing here
imports a subpackage above ``registry``."""
from .build import build_component
from .checks import check_range

__all__ = ['build_component', 'check_range']
