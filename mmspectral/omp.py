"""How idle OpenMP threads wait, chosen by the tools before torch starts its thread pool.

Kept free of torch imports: ``OMP_WAIT_POLICY`` only takes effect if it is set before the OpenMP runtime
loads.

PyTorch's CPU kernels run in libgomp thread teams. By default an idle team thread spins briefly before it
sleeps, so the next operation starts at once; with ``OMP_WAIT_POLICY=PASSIVE`` it sleeps immediately and every
operation pays a wake-up. Measured on 2 cores (docs/results.md): PASSIVE makes a step of the tiny quick-start
tokenizer 43% slower and d16 sampling 15-25% slower. When data-loader worker processes share the cores,
though, spinning threads take the time the workers need to load images, and PASSIVE is faster (18% on the
tokenizer drawing its images in two workers). So the tools pick PASSIVE exactly when data-loader workers run,
and otherwise leave libgomp's default. A value the user set in the environment (``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT``) wins.
"""
import os
from typing import Optional, Sequence

__all__ = ['set_omp_wait_policy', 'config_data_workers']


def set_omp_wait_policy(data_workers: int) -> Optional[str]:
    """PASSIVE if ``data_workers`` > 0 and the user set no policy;
    returns the policy in force (None: default)."""
    if data_workers > 0 and not any(key in os.environ for key in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')):
        os.environ['OMP_WAIT_POLICY'] = 'PASSIVE'
    return os.environ.get('OMP_WAIT_POLICY')


def config_data_workers(config: str, cfg_options: Optional[dict], loaders: Sequence[str]) -> int:
    """The most data-loader workers that ``loaders`` (e.g. 'train_dataloader') of a config file use.

    Reads the file with MMEngine's Config alone (no torch, no ``custom_imports``). A config that cannot be
    read here counts as using workers (the safe choice); the tool then reports the problem itself.
    """
    from mmengine.config import Config
    try:
        cfg = Config.fromfile(config, import_custom_modules=False)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        return max(int((cfg.get(name) or {}).get('num_workers', 0) or 0) for name in loaders)
    except Exception:  # noqa: BLE001 - any failure here is reported by the tool's own loading
        return 1
