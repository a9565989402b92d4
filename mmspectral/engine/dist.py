"""Process-group set-up that also works without a GPU.

MMEngine's ``init_dist`` always calls ``torch.cuda.set_device`` and defaults to NCCL, so
``--launcher pytorch`` fails on CPU machines. :func:`init_distributed` picks NCCL when CUDA is present and
gloo otherwise, and MMEngine then skips its own initialisation (it only initialises when no process group
exists).
"""
import datetime
import os
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log

__all__ = ['init_distributed', 'default_backend', 'shutdown_distributed', 'setup_worker', 'set_tf32']


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
        timeout: seconds before a collective times out.
        **kwargs: passed to ``init_process_group``.

    Returns:
        True when this call initialised the process group.
    """
    if launcher == 'none' or launcher == 'mpi' or (torch_dist.is_available() and torch_dist.is_initialized()):
        return False
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
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group(backend=backend, rank=int(os.environ['RANK']),
                                  world_size=int(os.environ['WORLD_SIZE']), **kwargs)
    print_log(f'Initialised torch.distributed: backend={backend}, rank {torch_dist.get_rank()} of '
              f'{torch_dist.get_world_size()}.', logger='current')
    return True


def shutdown_distributed() -> None:
    """Wait for every rank, then tear the process group down.

    A process that exits with a live gloo group can abort in the group's destructor ("terminate called
    without an active exception") while its peers are still finishing, e.g. saving the last checkpoint.
    """
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
