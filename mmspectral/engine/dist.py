"""Process-group set-up that also works without a GPU.

MMEngine's ``init_dist`` always calls ``torch.cuda.set_device`` and defaults to NCCL, so
``--launcher pytorch`` fails on CPU machines. :func:`init_distributed` picks NCCL when CUDA is present and
gloo otherwise, and MMEngine then skips its own initialisation (it only initialises when no process group
exists).

The collective timeout (how long an all-reduce, broadcast or barrier waits for the slowest rank) is
:data:`DEFAULT_DIST_TIMEOUT` unless set (:func:`dist_timeout`). Once the group exists, every process also
starts a heartbeat (:mod:`.heartbeat`) so that a timed-out collective can name the rank that never came.
"""
import datetime
import math
import numbers
import os
from typing import Any, Optional

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log

from .heartbeat import start_heartbeat, stop_heartbeat

__all__ = ['init_distributed', 'default_backend', 'shutdown_distributed', 'setup_worker', 'set_tf32',
           'dist_timeout', 'check_dist_timeout', 'DEFAULT_DIST_TIMEOUT', 'DIST_TIMEOUT_ENV']

#: Seconds a collective waits for the slowest rank, unless the config, --dist-timeout or the environment
#: variable says otherwise. NCCL's own default (torch >= 2.2), so CPU (gloo) runs behave like GPU runs
#: (gloo's default is 30 min); several times a checkpoint save of the largest model (d30, ~24 GB on rank 0 at
#: ~200 MB/s: ~2 min) or a validation, during which the other ranks wait.
DEFAULT_DIST_TIMEOUT = 600.0
#: Environment variable that changes the default for every tool (config and --dist-timeout still win).
DIST_TIMEOUT_ENV = 'MMSPECTRAL_DIST_TIMEOUT'


def check_dist_timeout(value: Any, source: str = 'timeout') -> float:
    """``value`` (seconds: a number, a numeric string or a ``timedelta``) as a positive, finite float.

    Raises:
        ValueError: naming ``source`` (e.g. '--dist-timeout'), the value and what is expected.
    """
    seconds = value.total_seconds() if isinstance(value, datetime.timedelta) else value
    if isinstance(seconds, str):
        try:
            seconds = float(seconds)
        except ValueError:
            seconds = None
    if (isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(seconds)
            or seconds <= 0):
        raise ValueError(f'{source}={value!r}: expected the collective timeout as a positive number of '
                         'seconds, e.g. 600 (10 minutes, the default) or 1800. Fix or remove it '
                         '(docs/distributed.md).')
    return float(seconds)


def dist_timeout(timeout: Any = None) -> float:
    """The collective timeout in seconds: ``timeout`` (from ``env_cfg.dist_cfg`` or ``--dist-timeout``) when
    set, else ``$MMSPECTRAL_DIST_TIMEOUT`` when set, else :data:`DEFAULT_DIST_TIMEOUT`; each checked by
    :func:`check_dist_timeout`."""
    if timeout is not None:
        return check_dist_timeout(timeout, 'env_cfg.dist_cfg.timeout')
    env = os.environ.get(DIST_TIMEOUT_ENV)
    if env is not None and env.strip():
        return check_dist_timeout(env, DIST_TIMEOUT_ENV)
    return DEFAULT_DIST_TIMEOUT


def default_backend() -> str:
    """NCCL when this process can use a GPU, else gloo."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def _slurm_env() -> None:
    """Fill torch.distributed's environment variables from SLURM's, as MMEngine's slurm launcher does."""
    import subprocess
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ.setdefault('MASTER_PORT', os.environ.get('PORT', '29500'))
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


def init_distributed(launcher: str, backend: Optional[str] = None, timeout: Optional[float] = None,
                     **kwargs) -> bool:
    """Initialise torch.distributed for ``launcher`` ('pytorch' or 'slurm') unless it already is.

    Args:
        launcher: 'none' does nothing; 'pytorch' reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK; 'slurm'
            reads SLURM's variables. 'mpi' is left to MMEngine.
        backend: 'nccl' or 'gloo'; None picks :func:`default_backend`. NCCL without a GPU is an error.
        timeout: seconds a collective waits for the slowest rank before it fails; None: see
            :func:`dist_timeout` (``$MMSPECTRAL_DIST_TIMEOUT``, else 600).
        **kwargs: passed to ``init_process_group``.

    Returns:
        True when this call initialised the process group.
    """
    if launcher == 'none' or launcher == 'mpi' or (torch_dist.is_available() and torch_dist.is_initialized()):
        return False
    seconds = dist_timeout(timeout)  # checked before anything starts
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f"Unknown launcher {launcher!r}; use 'none', 'pytorch', 'slurm' or 'mpi'.")
    if launcher == 'slurm':
        _slurm_env()
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')
               if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher {launcher} needs the environment variables {missing}; start the job '
                           'with tools/dist_train.sh (torchrun) or srun, '
                           'or use --launcher none for one process.')
    backend = backend or default_backend()
    if backend == 'nccl' and not torch.cuda.is_available():
        raise RuntimeError("dist_cfg backend='nccl' needs CUDA, and this process sees no GPU; use "
                           "backend='gloo' (or leave it unset to choose automatically).")
    local_rank = int(os.environ['LOCAL_RANK'])
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    kwargs['timeout'] = datetime.timedelta(seconds=seconds)
    torch_dist.init_process_group(backend=backend, rank=int(os.environ['RANK']),
                                  world_size=int(os.environ['WORLD_SIZE']), **kwargs)
    start_heartbeat(seconds)
    print_log(f'Initialised torch.distributed: backend={backend}, rank {torch_dist.get_rank()} of '
              f'{torch_dist.get_world_size()}, collective timeout {seconds:g} s.', logger='current')
    return True


def shutdown_distributed() -> None:
    """Wait for every rank, then tear the process group down.

    A process that exits with a live gloo group can abort in the group's destructor ("terminate called
    without an active exception") while its peers are still finishing, e.g. saving the last checkpoint.
    """
    stop_heartbeat()  # before the store goes away with rank 0's process
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def setup_worker(launcher: str, device: str):
    """For tools that shard work over ranks: initialise the process group, return (rank, world size, device).

    A 'cuda' device becomes this rank's GPU.
    """
    init_distributed(launcher)
    initialised = torch_dist.is_available() and torch_dist.is_initialized()
    rank, world = (torch_dist.get_rank(), torch_dist.get_world_size()) if initialised else (0, 1)
    dev = torch.device(device)
    if dev.type == 'cuda':
        dev = torch.device('cuda', torch.cuda.current_device())
    return rank, world, dev


def set_tf32(enabled: bool = True) -> None:
    """TF32 tensor cores for float32 matmuls and convolutions (Ampere and later GPUs).

    Float32 matmuls then keep a 10-bit mantissa: ~2-8x faster, with relative errors near 1e-3. The generators
    train under bf16 autocast, so this only affects what runs outside autocast (optimizer-side maths, fp32
    configs, tokenizer decoding in fp32). No effect on CPUs.
    """
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)
    if not torch.cuda.is_available():
        print_log('set_tf32: no GPU here, TF32 has no effect.', logger='current')
