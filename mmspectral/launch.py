"""What every command-line tool does before its own work, in one place.

``run(main)`` is a tool's ``if __name__ == '__main__'`` block: it keeps freed memory in the process
(:mod:`mmspectral.allocator`; blocks freed by one step are reused by the next without new page faults), then
calls ``main``. ``prepare(...)`` is for what must happen before torch loads: the OpenMP wait policy for tools
that run data-loader workers (:mod:`mmspectral.omp`) and a headless matplotlib backend for tools that draw
figures. Neither imports torch, and neither changes a number a tool computes.
"""
import os
from typing import Any, Callable, Optional

from .allocator import keep_freed_memory
from .omp import set_omp_wait_policy

__all__ = ['prepare', 'run']


def prepare(data_workers: int = 0, *, passive: bool = False, plots: bool = False) -> Optional[str]:
    """Set what must be set before torch (and matplotlib's pyplot) load: the OpenMP wait policy for
    ``data_workers`` data-loader workers and, with ``plots``, matplotlib's file-only backend (Agg; a display
    backend chosen by ``MPLBACKEND`` wins). Returns the OpenMP policy in force.

    ``passive=True`` asks for the passive policy whatever the workers: the web demo (its sampling thread
    beside the server's threads) and tools/analysis/benchmark_tokenizers.py (as its published figures were
    measured). A policy the user set (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``) wins either way."""
    if plots and 'MPLBACKEND' not in os.environ:
        import matplotlib
        matplotlib.use('Agg')
    return set_omp_wait_policy(max(data_workers, 1) if passive else data_workers)


def run(main: Callable[[], Any]) -> Any:
    """Run a tool's ``main`` the way every tool starts: freed memory kept in the process first."""
    keep_freed_memory()
    return main()
