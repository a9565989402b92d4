"""Evaluate a checkpoint: python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options ...]."""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

from mmspectral.cli import add_trust_arg, existing_file, output_folder
from mmspectral.omp import config_data_workers, set_omp_wait_policy


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate an mmspectral checkpoint on the test set.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', type=existing_file, help='checkpoint file')
    parser.add_argument('--work-dir', type=output_folder,
                        help='where logs and results go (default: ./work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    add_trust_arg(parser)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    # How idle OpenMP threads wait depends on whether data-loader workers share the cores (mmspectral/omp.py);
    # it must be set before torch loads, hence the imports below.
    set_omp_wait_policy(config_data_workers(args.config, args.cfg_options, ['test_dataloader']))
    from mmspectral.apis import (build_runner, default_work_dir, load_config, register_all_modules,
                                 trust_from_args)
    from mmspectral.engine import ConfigCheckError, shutdown_distributed
    register_all_modules(init_default_scope=False)
    cfg = trust_from_args(load_config(args.config, args.cfg_options), args)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_work_dir(args.config)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint {args.checkpoint!r} does not exist.')
    missing = [k for k in ('test_dataloader', 'test_cfg', 'test_evaluator') if cfg.get(k) is None]
    if missing:
        raise KeyError(f'{args.config} cannot be tested: it has no {", ".join(missing)}. Add them (see the '
                       'configs under configs/ for examples).')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    try:  # the config, then that the checkpoint fits the model, are checked before any data is read
        runner = build_runner(cfg, mode='test')
    except ConfigCheckError as exc:
        sys.exit(str(exc))  # the message, without a traceback, and exit status 1
    runner.test()
    shutdown_distributed()


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
