"""Speed measurement shared by the benchmark scripts: idle-machine waits, medians, peak memory, the machine's
matmul peak and streaming bandwidth, and the FLOPs and weight bytes of a sampling step.

CPU timings mean little while other processes use the cores, so every benchmark waits for an idle machine and
reports the CPU time other processes took while it measured ("foreign CPU seconds").
"""
import os
import resource
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

from mmspectral.models.generators import SpectralARGenerator, generate_tokens
from mmspectral.models.layers.packed_linear import packed_linears
from mmspectral.utils.precision import EMULATED_BF16_SLOWDOWN, cpu_bf16_native

__all__ = ['cpu_description', 'bf16_skip_reason', 'announce_cpu', 'cpu_busy_seconds', 'wait_until_idle',
           'measure', 'measure_alternating', 'reset_peak_rss', 'peak_rss_mib', 'matmul_peak',
           'stream_bandwidth', 'step_weight_bytes', 'sampling_flops', 'time_sampling']


def cpu_description() -> Dict[str, object]:
    """The CPU a timing was measured on: its model name (/proc/cpuinfo), the instruction set torch's
    kernels use (``torch.backends.cpu.get_cpu_capability()``: 'AVX2', 'AVX512', ...), cores, threads."""
    name = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            name = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), name)
    except OSError:
        pass
    return dict(model=name, capability=torch.backends.cpu.get_cpu_capability(), cores=os.cpu_count(),
                threads=torch.get_num_threads())


def bf16_skip_reason(device: torch.device) -> Optional[str]:
    """Why a benchmark skips its bf16 rows on ``device`` (a CPU without native bf16), or None."""
    if device.type != 'cpu' or cpu_bf16_native():
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    return (f'skipping the bf16 rows: this CPU ({capability}) has no native bf16 (AVX512-BF16 / AMX), so '
            f'bf16 is emulated ({EMULATED_BF16_SLOWDOWN}) and its timings would say nothing about bf16 '
            'sampling; MMSPECTRAL_CPU_BF16=1 measures them anyway')


def announce_cpu(device: torch.device, bf16: bool) -> Tuple[Dict[str, object], Optional[str]]:
    """What a benchmark prints first: the CPU it runs on and, when it was asked for bf16 rows that this CPU
    would emulate, why it skips them. Returns ``(cpu_description(), the skip reason or None)``."""
    cpu = cpu_description()
    print(f'# CPU: {cpu["model"]}, {cpu["capability"]}, {cpu["cores"]} cores')
    skip = bf16_skip_reason(device) if bf16 else None
    if skip:
        print(f'# {skip}')
    return cpu, skip


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


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a square matmul whose operands stay in cache: the machine's practical peak."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(times) / 1e9


def stream_bandwidth(device: torch.device, dtype: torch.dtype, mib: int = 512, repeats: int = 5) -> float:
    """GB/s at which a 2-row linear layer reads a weight matrix far larger than the caches.

    One sampling step at a small batch reads every weight once and does little else, so this rate bounds it:
    seconds per step >= weight bytes / bandwidth (the 'floor' column). The layer runs the way sampling runs
    it: with the oneDNN-packed weight for fp32 on the CPU, the default kernel otherwise.
    """
    cols = 4096
    rows = mib * 2 ** 20 // (cols * torch.tensor([], dtype=dtype).element_size())
    layer = torch.nn.Linear(cols, rows, bias=False).to(device=device, dtype=dtype).eval()
    x = torch.randn(2, cols, device=device, dtype=dtype)
    cache = {}
    times = []
    with torch.no_grad(), packed_linears(layer, cache, rows=2):
        layer(x)
        for _ in range(repeats):
            if device.type == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            layer(x)
            if device.type == 'cuda':
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return layer.weight.numel() * layer.weight.element_size() / min(times) / 1e9


def step_weight_bytes(model: SpectralARGenerator, bytes_per_weight: int) -> int:
    """Bytes of the weights one sampling step reads: the blocks' qkv, proj, fc1, fc2 and the head (not AdaLN,
    which runs once per image)."""
    c, v = model.width, model.vocab_size
    return bytes_per_weight * (model.depth * 12 * c * c + c * v)


def sampling_flops(model: SpectralARGenerator, batch: int, guided: bool, cached: bool) -> float:
    """Floating-point operations of one ``generate`` call (multiply-add = 2)."""
    c, n, p, v = model.width, model.num_tokens, model.block_size, model.vocab_size
    rows = batch * (2 if guided else 1)
    per_token_matmul = 2 * model.depth * 12 * c * c + 2 * c * v  # qkv, proj, fc1, fc2; head
    adaln = 2 * rows * (model.depth * 6 * c * c + 2 * c * c)  # once per image
    total = adaln
    for step in range(n // p):
        end = (step + 1) * p
        new = p if cached else end  # positions computed in this step
        total += rows * new * per_token_matmul
        total += rows * model.depth * 2 * 2 * new * end * c  # q.k and attention-weighted v
    return total


def time_sampling(model, labels, options: dict, autocast: bool, repeats: int, device: torch.device) -> tuple:
    """Median seconds of sampling ``labels`` with ``model`` (a SpectralARGenerator; ``generate_tokens`` with
    ``options``, after a warm-up), peak memory in MiB, and the CPU seconds other processes used meanwhile."""
    def once():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            generate_tokens(model, labels, **options)
        if device.type == 'cuda':
            torch.cuda.synchronize()

    once()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    foreign = cpu_busy_seconds()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() if device.type == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2 ** 20
    return statistics.median(times), peak, cpu_busy_seconds() - foreign
