"""Packages only some features need: imported when the feature runs, with one message that says what to
install."""
import importlib
from typing import Optional

__all__ = ['require']


def require(module: str, purpose: str, install: Optional[str] = None):
    """``import module``, or an ImportError naming ``purpose`` and the pip command (tools/setup_env.sh
    installs every optional package of requirements/pinned.txt)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f'{purpose} needs the `{module}` package: pip install {install or module} '
                          '(tools/setup_env.sh installs it).') from None
