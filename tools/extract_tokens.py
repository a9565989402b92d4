"""Encode a dataset once with a trained tokenizer, for generator training.

    python tools/extract_tokens.py TOKENIZER_CONFIG CHECKPOINT --out data/tokens/NAME [--split train]
        [--augment none|flip|tencrop] [--crop-range 1.1] [--batch-size 64] [--num-workers 4]
    torchrun --nproc_per_node 8 tools/extract_tokens.py ... --launcher pytorch     # sharded across ranks

What it does (the evaluation pipeline, the augmented variants, the shards that let an interrupted run
continue when started again with the same command): :func:`mmspectral.apis.tokens.extract_tokens`.
"""
import argparse

from mmengine.config import DictAction  # no torch: the OpenMP policy is set before torch loads

from mmspectral.cli import (add_trust_arg, bounded, existing_file, non_negative_int, output_folder,
                            positive_int)

DEFAULT_NUM_WORKERS = 2
AUGMENTS = ('flip', 'none', 'tencrop')  # mmspectral.apis.tokens.NUM_VARIANTS, known before torch loads


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Encode a dataset into token files for generator training.')
    parser.add_argument('config', type=existing_file, help='the tokenizer config (a TokenizerModel)')
    parser.add_argument('checkpoint', type=existing_file, help='the trained tokenizer checkpoint')
    parser.add_argument('--out', required=True, type=output_folder, help='output folder')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    parser.add_argument('--augment', default='none', choices=AUGMENTS)
    parser.add_argument('--crop-range', type=bounded(float, 1), default=1.1,
                        help='tencrop: enlarge the image by this factor before cropping (>= 1)')
    parser.add_argument('--batch-size', type=positive_int, default=64)
    parser.add_argument('--num-workers', type=non_negative_int, default=DEFAULT_NUM_WORKERS)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_dataloader.dataset.num_samples=1000')
    parser.add_argument('--device', default=None, help='cuda when a GPU is visible, else cpu')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    add_trust_arg(parser)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    # Before torch loads: idle OpenMP threads sleep at once when data-loader workers share the cores
    # (mmspectral/omp.py).
    from mmspectral.launch import prepare
    prepare(args.num_workers)
    import torch

    from mmspectral.apis.tokens import extract_tokens
    from mmspectral.engine import shutdown_distributed
    from mmspectral.fileio import ProvenanceError
    try:
        extract_tokens(args.config, args.checkpoint, args.out, split=args.split, augment=args.augment,
                       crop_range=args.crop_range, batch_size=args.batch_size, num_workers=args.num_workers,
                       cfg_options=args.cfg_options,
                       device=args.device or ('cuda' if torch.cuda.is_available() else 'cpu'),
                       launcher=args.launcher, trust_checkpoint=args.trust_checkpoint)
    except ProvenanceError as exc:
        raise SystemExit(str(exc))
    shutdown_distributed()


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
