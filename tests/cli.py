"""The one way the tests run a command-line tool in this process: load ``tools/...py`` and call its ``main``.

What a tool computes is tested through the package function it calls (``mmspectral.apis.tokens``,
``mmspectral.analysis.table4``, ...); a tool's own tests are smoke tests of its command line (arguments,
messages, the files it writes) through :func:`run_cli`. Tools that must start in a fresh process (the
OpenMP set-up, torchrun) run as subprocesses instead.
"""
import importlib.util
import os.path as osp
import re
from types import ModuleType
from typing import Any, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_cli(path: str) -> ModuleType:
    """A fresh copy of the tool at ``path`` (relative to the repository root), imported but not run."""
    full = osp.join(REPO_ROOT, path)
    if not osp.isfile(full):
        raise FileNotFoundError(f'{path}: no such tool under {REPO_ROOT}')
    spec = importlib.util.spec_from_file_location('cli_' + re.sub(r'\W', '_', path[:-3]), full)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(path: str, argv: Sequence[Any] = ()) -> Any:
    """``main(argv)`` of the tool at ``path``, in this process; what it returns (SystemExit propagates)."""
    return load_cli(path).main([str(a) for a in argv])
