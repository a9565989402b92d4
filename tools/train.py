"""Train a model from a config: python tools/train.py CONFIG [--work-dir DIR] [--resume [auto|PATH]]
[--start-over] [--amp] [--dist-timeout SECONDS]."""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

from mmspectral.cli import add_trust_arg
from mmspectral.omp import config_data_workers, set_omp_wait_policy


def parse_args():
    parser = argparse.ArgumentParser(description='Train an mmspectral model.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir',
                        help='where logs and checkpoints go (default: ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='auto|PATH',
                        help='resume the run: "auto" (or no value) picks the newest checkpoint in the '
                        'work dir; a path resumes from that checkpoint')
    parser.add_argument('--start-over', action='store_true',
                        help='train a new run in a work dir that holds another run\'s checkpoints; they are '
                        'moved into a replaced_<time> sub-folder of the work dir, not deleted')
    parser.add_argument('--amp', action='store_true',
                        help='bf16 autocast (AutocastOptimWrapper, dtype auto) on a GPU and on a CPU with '
                        'native bf16; on a CPU without it (AVX2 only) training stays fp32, with a log line '
                        'that says so (--cfg-options optim_wrapper.dtype=bfloat16 forces bf16 there)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_cfg.max_iters=1000')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='how processes were started (tools/dist_train.sh passes pytorch)')
    parser.add_argument('--dist-timeout', metavar='SECONDS',
                        help='how long a collective operation (all-reduce, barrier) waits for the slowest '
                        'rank before the run stops with a message that names the ranks that never came; wins '
                        'over env_cfg.dist_cfg.timeout, which wins over $MMSPECTRAL_DIST_TIMEOUT; '
                        'default 600 (docs/distributed.md)')
    parser.add_argument('--skip-checks', action='store_true',
                        help='start without the checks of the config, data and weight files (docs/faq.md)')
    add_trust_arg(parser)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    # How idle OpenMP threads wait depends on whether data-loader workers share the cores (mmspectral/omp.py);
    # it must be set before torch loads, hence the imports below.
    set_omp_wait_policy(config_data_workers(args.config, args.cfg_options, ['train_dataloader']))
    from mmspectral.apis import (build_runner, default_work_dir, load_config, register_all_modules,
                                 trust_from_args)
    from mmspectral.engine import (ConfigCheckError, WorkDirBusyError, WorkDirInUseError, check_dist_timeout,
                                   dist_timeout, shutdown_distributed)
    register_all_modules(init_default_scope=False)
    cfg = trust_from_args(load_config(args.config, args.cfg_options), args)
    try:  # before anything is written
        if args.dist_timeout is not None:
            cfg.merge_from_dict({'env_cfg.dist_cfg.timeout': check_dist_timeout(args.dist_timeout,
                                                                                '--dist-timeout')})
        dist_timeout(((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout'))
    except ValueError as exc:
        sys.exit(str(exc))
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
    if args.amp:
        optim_wrapper = cfg.get('optim_wrapper')
        if optim_wrapper is None:
            raise ValueError(f'--amp needs an optim_wrapper in {args.config}.')
        if optim_wrapper.get('type', 'OptimWrapper') in ('OptimWrapper', 'AutocastOptimWrapper'):
            optim_wrapper.type = 'AutocastOptimWrapper'
            if optim_wrapper.get('dtype', 'float32') in ('float32', 'fp32'):  # a config's reduced one is kept
                optim_wrapper.dtype = 'auto'
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume {args.resume}: no such checkpoint file.')
        cfg.resume = True
        cfg.load_from = args.resume
    if args.start_over:
        if args.resume is not None:
            sys.exit('--start-over starts a new run and --resume continues one: pass only one of them.')
        cfg.start_over = True
    if args.skip_checks:
        cfg.skip_checks = True
    try:  # the config, then the checkpoint to load, are checked before any data is read
        runner = build_runner(cfg, mode='train')
    except ConfigCheckError as exc:
        sys.exit(str(exc))  # the message, without a traceback, and exit status 1
    try:
        runner.train()
    except (WorkDirBusyError, WorkDirInUseError) as exc:
        sys.exit(str(exc))  # refused before anything was trained or written: the message is enough
    shutdown_distributed()


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
