"""Timing helpers shared by the benchmark scripts: idle-machine waits, medians, peak memory.

CPU timings mean little while other processes use the cores, so every benchmark waits for an idle machine and
reports the CPU time other processes took while it measured ("foreign CPU seconds").
"""
import os
import resource
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch

__all__ = ['cpu_busy_seconds', 'wait_until_idle', 'measure', 'measure_alternating', 'reset_peak_rss',
           'peak_rss_mib']


def cpu_busy_seconds() -> float:
    """CPU seconds all processes except this one have used so far
    (from /proc/stat and this process's times)."""
    try:
        with open('/proc/stat') as f:
            fields = [float(v) for v in f.readline().split()[1:8]]
        ticks = os.sysconf('SC_CLK_TCK')
        busy = (sum(fields) - fields[3] - fields[4]) / ticks  # minus idle and iowait
        own = sum(os.times()[:4])
        return busy - own
    except (OSError, ValueError):
        return 0.0


def wait_until_idle(threshold: float = 0.05, window: float = 2.0, timeout: float = 60.0) -> None:
    """Wait until other processes use under ``threshold`` of one core for ``window`` seconds."""
    start = time.time()
    while time.time() - start < timeout:
        before = cpu_busy_seconds()
        time.sleep(window)
        if (cpu_busy_seconds() - before) / window < threshold:
            return
    print(f'warning: the machine did not become idle within {timeout:.0f} s; CPU timings are unreliable')


def reset_peak_rss() -> bool:
    """Reset this process's resident-memory high-water mark (Linux ``/proc/self/clear_refs``);
    False if unable."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """This process's resident-memory high-water mark in MiB
    (since start, or since :func:`reset_peak_rss`)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(fn: Callable[[], object], iters: int, device: torch.device, warmup: int = 1) -> dict:
    """Median wall time of ``fn`` over ``iters`` runs after ``warmup`` runs, peak memory,
    and foreign CPU time.

    Peak memory: CUDA ``max_memory_allocated`` during the timed runs; on the CPU the process's resident
    high-water mark over the timed runs (model and framework included).
    """
    for _ in range(warmup):
        fn()
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_peak_rss()
    foreign = cpu_busy_seconds()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    foreign = cpu_busy_seconds() - foreign
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == 'cuda' else peak_rss_mib()
    return dict(seconds=statistics.median(times), peak_mib=peak, foreign_cpu_s=foreign)


def measure_alternating(fns: Dict[str, Callable[[], object]], repeats: int, device: torch.device,
                        warmup: int = 1) -> Tuple[Dict[str, List[float]], float]:
    """Wall times of several functions taking turns: every repeat runs each once, in order, so a change in the
    machine's speed hits all of them alike. Returns (name -> seconds of every repeat, foreign CPU seconds)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    foreign = cpu_busy_seconds()
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == 'cuda':
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return times, cpu_busy_seconds() - foreign
