"""Turn a checkpoint of FSDP training (SpectralFSDPStrategy) into one weights file for sampling.

    # state_dict_cfg='full' (the shipped FSDP configs): the checkpoint is already one file; this keeps
    # only the weights and the meta (the AdamW states are two thirds of the file)
    python tools/model_converters/fsdp_to_single.py CONFIG work_dirs/.../iter_584000.pth d24.pth

    # state_dict_cfg='local': a folder iter_N.pth/ holding rank0.pth ... rank{K-1}.pth, one shard per rank.
    # Run it with K processes, as many as wrote it; CPU processes (gloo) will do, no GPU is needed:
    python -m torch.distributed.run --nproc_per_node K tools/model_converters/fsdp_to_single.py \\
        CONFIG work_dirs/.../iter_N.pth out.pth --launcher pytorch

The output holds ``state_dict`` (the unsharded model's keys, as DDP training writes them) and ``meta``;
pass it to tools/sample.py, tools/test.py or ``load_from``. A folder of shards is read by rebuilding the
config's model, wrapping it with the config's FSDP strategy (same world size, same wrap policy) and
gathering the full weights on rank 0.
"""
import argparse
import glob
import os
import os.path as osp
import sys
import tempfile

import torch
from mmengine.config import DictAction

from mmspectral.apis import load_config, register_all_modules
from mmspectral.cli import add_trust_arg
from mmspectral.engine import shutdown_distributed, trust_files
from mmspectral.engine.checkpoint import load_torch_file
from mmspectral.fileio import atomic_write


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='FSDP checkpoint (file or folder of shards) -> one file.')
    parser.add_argument('config', help='the training config (its model and strategy)')
    parser.add_argument('checkpoint', help='iter_N.pth: a file (full state dict) or a folder of rank*.pth')
    parser.add_argument('out', help='the single weights file to write')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='pytorch under torchrun (needed for a folder of shards)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    add_trust_arg(parser)
    return parser.parse_args(argv)


def _save(obj: dict, path: str) -> None:
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)


def _weights_meta(ckpt: dict) -> dict:
    # The RNG states of exact resume hold numpy arrays and python tuples: left out, so that the written file
    # loads with torch.load(weights_only=True) like any other weights file.
    return {k: v for k, v in ckpt.get('meta', {}).items() if k != 'rng_states'}


def convert_file(checkpoint: str, out: str) -> dict:
    """A full checkpoint -> ``{'meta', 'state_dict'}`` (optimizer, schedulers and message hub dropped)."""
    ckpt = load_torch_file(checkpoint)
    if 'state_dict' not in ckpt:
        raise ValueError(f'{checkpoint} has no "state_dict" entry; expected a checkpoint written by an '
                         f'mmspectral runner, found keys {sorted(ckpt)[:10]}.')
    result = dict(meta=_weights_meta(ckpt), state_dict=ckpt['state_dict'])
    _save(result, out)
    return result


def convert_folder(cfg, folder: str, out: str, launcher: str) -> None:
    """Shards of ``state_dict_cfg='local'`` -> the full state dict, gathered and written by rank 0."""
    from mmengine.registry import DefaultScope
    from torch.distributed.fsdp import FullStateDictConfig
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import StateDictType

    from mmspectral.registry import STRATEGIES

    shards = sorted(glob.glob(osp.join(folder, 'rank*.pth')))
    if not shards:
        raise FileNotFoundError(f'{folder} holds no rank*.pth shards; is it a checkpoint of '
                                'state_dict_cfg="local"?')
    strategy_cfg = dict(cfg.get('strategy') or {})
    if 'FSDP' not in str(strategy_cfg.get('type', '')):
        raise ValueError(f'The config has strategy={strategy_cfg or None}; converting shards needs the FSDP '
                         'strategy the checkpoint was trained with (e.g. configs/spectralar/*_fsdp.py).')
    if launcher == 'none':
        raise RuntimeError(f'{folder} holds {len(shards)} shards: run this tool with {len(shards)} '
                           f'processes, python -m torch.distributed.run --nproc_per_node {len(shards)} '
                           'tools/model_converters/fsdp_to_single.py ... --launcher pytorch')
    env_cfg = dict(cfg.get('env_cfg') or {})
    strategy_cfg.update(state_dict_cfg='local', work_dir=tempfile.mkdtemp(prefix='fsdp_to_single_'),
                        env_kwargs=dict(launcher=launcher, randomness=dict(seed=0),
                                        dist_cfg=env_cfg.get('dist_cfg') or {}),
                        log_kwargs=dict(log_level='WARNING'))
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmspectral')):
        strategy = STRATEGIES.build(strategy_cfg)
        if strategy.world_size != len(shards):
            raise RuntimeError(f'{folder} holds {len(shards)} shards but {strategy.world_size} processes '
                               f'run: use --nproc_per_node {len(shards)}.')
        strategy.prepare(cfg.model)
        # Not strict: with use_orig_params=True FSDP loads each local `_flat_param` shard through its
        # own hooks, yet load_state_dict still lists those keys as unexpected.
        ckpt = strategy.load_checkpoint(folder)
        with FSDP.state_dict_type(strategy.model, StateDictType.FULL_STATE_DICT,
                                  FullStateDictConfig(offload_to_cpu=True, rank0_only=True)):
            state_dict = strategy.model.state_dict()
    if strategy.rank == 0:
        _save(dict(meta=_weights_meta(ckpt), state_dict=state_dict), out)


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    with trust_files(args.trust_checkpoint):
        _convert(args)


def _convert(args) -> None:
    if osp.isfile(args.checkpoint):
        result = convert_file(args.checkpoint, args.out)
        print(f'{args.checkpoint} -> {args.out}: {len(result["state_dict"])} tensors')
        return
    if not osp.isdir(args.checkpoint):
        sys.exit(f'{args.checkpoint}: no such file or folder.')
    cfg = load_config(args.config, args.cfg_options)
    convert_folder(cfg, args.checkpoint, args.out, args.launcher)
    if int(os.environ.get('RANK', '0')) == 0:
        print(f'{args.checkpoint} -> {args.out}')
    shutdown_distributed()


if __name__ == '__main__':
    main()
