"""Encode a dataset once with a trained tokenizer, for generator training.

    python tools/extract_tokens.py TOKENIZER_CONFIG CHECKPOINT --out data/tokens/NAME [--split train]
        [--augment none|flip|tencrop] [--crop-range 1.1] [--batch-size 64] [--num-workers 4]
    torchrun --nproc_per_node 8 tools/extract_tokens.py ... --launcher pytorch     # sharded across ranks

Images go through the split's evaluation pipeline (deterministic: resize and centre crop), then the
tokenizer's ``encode``; ``--augment flip`` also encodes each image's horizontal flip (two variants per image;
the TokenDataset draws one at random while training); ``--augment tencrop`` enlarges the image by
``--crop-range`` (bicubic, antialiased), takes its four corner crops and its centre crop at the original size,
and their flips (ten variants, as LlamaGen's code extraction). Each rank writes its own memory-mapped shard
and marks the images it finished, so an interrupted run continues where it stopped when started again with the
same command. An unreadable image is reported with its path and gets label -1 (the TokenDataset skips it).
"""
import argparse
import glob
import os.path as osp

from mmspectral.cli import (add_trust_arg, bounded, existing_file, non_negative_int, output_folder,
                            positive_int)
from mmspectral.omp import set_omp_wait_policy

# Before torch loads: idle OpenMP threads sleep at once when data-loader workers share the cores
# (mmspectral/omp.py).
DEFAULT_NUM_WORKERS = 2
_workers = argparse.ArgumentParser(add_help=False)
_workers.add_argument('--num-workers', default=str(DEFAULT_NUM_WORKERS))  # a bad value: parse_args says so
_num_workers = _workers.parse_known_args()[0].num_workers
set_omp_wait_policy(int(_num_workers) if _num_workers.isdigit() else DEFAULT_NUM_WORKERS)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.registry import DATASETS as MMENGINE_DATASETS  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402

from mmspectral.apis import load_config, register_all_modules  # noqa: E402
from mmspectral.datasets.transforms import CorruptImageError  # noqa: E402
from mmspectral.engine import setup_worker, shutdown_distributed  # noqa: E402
from mmspectral.fileio import (TOKEN_FOLDER_META, ProvenanceError, claim_folder, file_identity,  # noqa: E402
                               shard_paths, trust_files, write_token_meta)
from mmspectral.models.tokenizers.loading import load_tokenizer, settle_value_range  # noqa: E402
from mmspectral.registry import MODELS  # noqa: E402


class _Tolerant(torch.utils.data.Dataset):
    """Index -> (index, packed sample or None for an unreadable image)."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        idx = int(self.indices[i])
        try:
            return idx, self.dataset.prepare_data(idx)
        except CorruptImageError as exc:
            print(f'\nwarning: {exc}', flush=True)
            return idx, None


def build_dataset(cfg, split: str):
    """The split's dataset with the deterministic evaluation pipeline."""
    key = f'{split}_dataloader'
    if cfg.get(key) is None:
        raise KeyError(f'The config has no {key}; choose --split train, val or test.')
    dataset_cfg = cfg[key].dataset.copy()
    dataset_cfg.pipeline = cfg.test_dataloader.dataset.pipeline
    dataset_cfg.pop('test_mode', None)
    dataset = MMENGINE_DATASETS.build(dataset_cfg)
    dataset.full_init()
    return dataset


NUM_VARIANTS = dict(none=1, flip=2, tencrop=10)


def augmented_views(images: torch.Tensor, augment: str, crop_range: float = 1.1) -> list:
    """The variants of a batch (B, 3, S, S) that ``augment`` encodes, each (B, 3, S, S), in a fixed order."""
    if augment == 'none':
        return [images]
    if augment == 'flip':
        return [images, images.flip(-1)]
    size = images.shape[-1]
    big = max(size, round(size * crop_range))
    up = F.interpolate(images, size=(big, big), mode='bicubic', antialias=True, align_corners=False)
    m = big - size
    crops = [up[..., y:y + size, x:x + size] for y, x in ((0, 0), (0, m), (m, 0), (m, m), (m // 2, m // 2))]
    return crops + [c.flip(-1) for c in crops]


def parse_args():
    parser = argparse.ArgumentParser(description='Encode a dataset into token files for generator training.')
    parser.add_argument('config', type=existing_file, help='the tokenizer config (a TokenizerModel)')
    parser.add_argument('checkpoint', type=existing_file, help='the trained tokenizer checkpoint')
    parser.add_argument('--out', required=True, type=output_folder, help='output folder')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    parser.add_argument('--augment', default='none', choices=sorted(NUM_VARIANTS))
    parser.add_argument('--crop-range', type=bounded(float, 1), default=1.1,
                        help='tencrop: enlarge the image by this factor before cropping (>= 1)')
    parser.add_argument('--batch-size', type=positive_int, default=64)
    parser.add_argument('--num-workers', type=non_negative_int, default=DEFAULT_NUM_WORKERS)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_dataloader.dataset.num_samples=1000')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    add_trust_arg(parser)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    register_all_modules()
    rank, world, device = setup_worker(args.launcher, args.device)
    cfg = load_config(args.config, args.cfg_options)
    if cfg.model.get('type') != 'TokenizerModel':
        raise ValueError(f'{args.config} is not a tokenizer config (model.type={cfg.model.get("type")!r}).')
    with trust_files(args.trust_checkpoint), trust_files(cfg.get('trust_checkpoints')):
        model_cfg = settle_value_range(cfg.model)  # the tokenizer carries the value range
        tokenizer = load_tokenizer(model_cfg['tokenizer'], args.checkpoint, device=device)
    preprocessor = MODELS.build(dict(model_cfg.get('data_preprocessor') or dict(type='ImageDataPreprocessor'),
                                     value_range=tokenizer.value_range)).to(device)
    dataset = build_dataset(cfg, args.split)
    num_images, n = len(dataset), tokenizer.num_tokens
    variants = NUM_VARIANTS[args.augment]
    meta_path = osp.join(args.out, TOKEN_FOLDER_META)
    identity = file_identity(args.checkpoint)
    meta = dict(num_images=num_images, done=0, complete=False, num_tokens=n, vocab_size=tokenizer.vocab_size,
                num_variants=variants, world_size=world, augment=args.augment,
                crop_range=args.crop_range if args.augment == 'tencrop' else None, split=args.split,
                tokenizer_config=osp.abspath(args.config), checkpoint=osp.abspath(args.checkpoint),
                checkpoint_size=identity['size'], checkpoint_sha256=identity['sha256'],
                classes=list(dataset.metainfo.get('classes', ())))
    # What decides the tokens: a folder made with another tokenizer, data or settings is never resumed.
    record = dict(checkpoint=identity, tokenizer=cfg.model.tokenizer.to_dict(),
                  dataset=cfg[f'{args.split}_dataloader'].dataset.to_dict(), split=args.split,
                  classes=meta['classes'], num_images=num_images, augment=args.augment,
                  crop_range=meta['crop_range'], world_size=world)
    has_outputs = osp.isfile(meta_path) or bool(glob.glob(osp.join(args.out, '*.npy')))
    try:
        claim_folder(args.out, record, has_outputs, 'tokens', write=rank == 0)
    except ProvenanceError as exc:
        raise SystemExit(str(exc))
    if dist.is_initialized():
        dist.barrier()  # every rank has checked the folder before rank 0 writes into it
    if rank == 0 and not osp.isfile(meta_path):
        write_token_meta(args.out, meta)
    # Rank r takes images r, r + world, ...
    mine = np.arange(rank, num_images, world)
    paths = shard_paths(args.out, rank, world)
    dtype = np.int16 if tokenizer.vocab_size <= np.iinfo(np.int16).max else np.int32
    mode = 'r+' if osp.isfile(paths['done']) else 'w+'
    tokens = np.lib.format.open_memmap(paths['tokens'], mode=mode, dtype=dtype,
                                       shape=(len(mine), variants, n))
    labels = np.lib.format.open_memmap(paths['labels'], mode=mode, dtype=np.int64, shape=(len(mine),))
    done = np.lib.format.open_memmap(paths['done'], mode=mode, dtype=np.bool_, shape=(len(mine),))
    todo = np.flatnonzero(~done)
    if rank == 0:
        print(f'encoding {num_images} images of the {args.split} split into {n} tokens x {variants} '
              f'variant(s) with {world} process(es); {len(mine) - len(todo)} already done on this rank',
              flush=True)
    loader = torch.utils.data.DataLoader(_Tolerant(dataset, mine[todo]), batch_size=args.batch_size,
                                         num_workers=args.num_workers, collate_fn=list)
    bar = ProgressBar(len(todo)) if rank == 0 and len(todo) else None
    row_of = {int(idx): row for row, idx in enumerate(mine)}
    with torch.no_grad():
        for batch in loader:
            good = [(idx, sample) for idx, sample in batch if sample is not None]
            for idx, sample in batch:
                if sample is None:
                    labels[row_of[idx]] = -1
                    done[row_of[idx]] = True
            if good:
                data = preprocessor(pseudo_collate([s for _, s in good]), False)
                images = data['inputs']
                codes = [tokenizer.encode(view)
                         for view in augmented_views(images, args.augment, args.crop_range)]
                codes = torch.stack(codes, 1).cpu().numpy().astype(dtype)  # (b, V, N)
                rows = [row_of[idx] for idx, _ in good]
                tokens[rows] = codes
                labels[rows] = [int(s['data_samples'].gt_label) for _, s in good]
                done[rows] = True
            tokens.flush(), labels.flush(), done.flush()  # a killed run loses at most this batch
            if bar is not None:
                bar.update(len(batch))
    if dist.is_initialized():
        dist.barrier()
    if rank == 0:
        finished = sum(int(np.load(shard_paths(args.out, r, world)['done'], mmap_mode='r').sum())
                       for r in range(world))
        meta.update(done=finished, complete=finished == num_images)
        write_token_meta(args.out, meta)
        print(f'\nwrote {finished} of {num_images} images to {args.out}', flush=True)
    shutdown_distributed()


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
