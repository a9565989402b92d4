"""Whether freed memory goes back to the operating system at once, chosen by the tools (glibc's malloc).

Kept free of torch imports, like :mod:`mmspectral.omp`.

glibc serves every block above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it when it
is freed, and trims the heap's top whenever 128 KiB are free there. A 256 px decoder or a sampling step frees
and reallocates the same large activations over and over, so each of them is faulted in page by page again
every time. Measured on 2 cores (docs/results.md): decoding 64 tokens to 256 px with the two-stage B-64
tokenizer took 1.93-2.02 s per image with glibc's defaults and 1.39-1.50 s with freed memory kept; d16
sampling at batch 8, 0.63-0.75 against 0.56-0.65 s per image in fp32; the peak resident size grew by 5%.

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve large blocks from the heap and never to trim it,
so memory freed by one operation is reused by the next without new page faults; the process keeps the memory
it once used until it exits (jemalloc and tcmalloc, which PyTorch's CPU performance tuning guide recommends,
avoid the same faults by caching freed memory too). The tools call it at start-up, as programs: their ``main``
called from Python leaves the process as it is. It changes nothing where the C library is not glibc, where the
user chose malloc settings (any ``MALLOC_*`` environment variable) or with ``MMSPECTRAL_KEEP_FREED_MEMORY=0``.
"""
import ctypes
import ctypes.util
import os
import sys

__all__ = ['keep_freed_memory', 'freed_memory_kept']

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied = None


def keep_freed_memory() -> bool:
    """Keep freed memory in this process (see the module docstring). Returns whether the setting is in force.

    Call it early (the tools do, before building models): blocks allocated before keep their mmap.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get('MMSPECTRAL_KEEP_FREED_MEMORY', '1') == '0' or any(
            key.startswith('MALLOC_') for key in os.environ) or not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl's mallopt does nothing
    except (OSError, AttributeError):
        return False
    # mallopt returns 1 on success; large blocks from the heap, and the heap never trimmed
    _applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    return _applied


def freed_memory_kept() -> bool:
    """Whether :func:`keep_freed_memory` applied in this process (a tool passes it on to spawned workers)."""
    return bool(_applied)
