"""Token extraction: a dataset encoded once with a trained tokenizer, for generator training
(tools/extract_tokens.py is its command line; the folder format is :mod:`mmspectral.fileio.token_folder`).

Images go through the split's evaluation pipeline (deterministic: resize and centre crop), then the
tokenizer's ``encode``; ``augment='flip'`` also encodes each image's horizontal flip (two variants per image;
the TokenDataset draws one at random while training); ``'tencrop'`` enlarges the image by ``crop_range``
(bicubic, antialiased), takes its four corner crops and its centre crop at the original size, and their flips
(ten variants, as LlamaGen's code extraction). Each rank writes its own memory-mapped shard and marks the
images it finished, so an interrupted run continues where it stopped when started again with the same
arguments. An unreadable image is reported with its path and gets label -1 (the TokenDataset skips it).
"""
import glob
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.utils import ProgressBar

from mmspectral.datasets.transforms import CorruptImageError
from mmspectral.engine import setup_worker
from mmspectral.fileio import (TOKEN_FOLDER_META, claim_folder, file_identity, shard_paths, trust_files,
                               write_token_meta)
from mmspectral.models.tokenizers.loading import load_tokenizer, settle_value_range
from mmspectral.registry import MODELS
from .config import load_config
from .setup_env import register_all_modules

__all__ = ['NUM_VARIANTS', 'augmented_views', 'extract_tokens']


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


def _split_dataset(cfg, split: str):
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


def extract_tokens(config: str, checkpoint: str, out: str, split: str = 'train', augment: str = 'none',
                   crop_range: float = 1.1, batch_size: int = 64, num_workers: int = 2,
                   cfg_options: Optional[dict] = None, device: str = 'cpu', launcher: str = 'none',
                   trust_checkpoint: Sequence[str] = ()) -> None:
    """Encode the ``split`` of a tokenizer config's data with its trained ``checkpoint`` into the token folder
    ``out`` (module docstring); every rank of a ``launcher`` run calls it. The process group it starts for
    ``launcher`` stays up for the caller (tools/extract_tokens.py shuts it down). A folder made with another
    tokenizer, data or settings is refused with a ``ProvenanceError`` that says what differs, never
    resumed."""
    if augment not in NUM_VARIANTS:
        raise ValueError(f'augment={augment!r}: choose one of {sorted(NUM_VARIANTS)}.')
    register_all_modules()
    rank, world, device = setup_worker(launcher, device)
    cfg = load_config(config, cfg_options)
    if cfg.model.get('type') != 'TokenizerModel':
        raise ValueError(f'{config} is not a tokenizer config (model.type={cfg.model.get("type")!r}).')
    with trust_files(trust_checkpoint), trust_files(cfg.get('trust_checkpoints')):
        model_cfg = settle_value_range(cfg.model)  # the tokenizer carries the value range
        tokenizer = load_tokenizer(model_cfg['tokenizer'], checkpoint, device=device)
    preprocessor = MODELS.build(dict(model_cfg.get('data_preprocessor') or dict(type='ImageDataPreprocessor'),
                                     value_range=tokenizer.value_range)).to(device)
    dataset = _split_dataset(cfg, split)
    num_images, n = len(dataset), tokenizer.num_tokens
    variants = NUM_VARIANTS[augment]
    meta_path = osp.join(out, TOKEN_FOLDER_META)
    identity = file_identity(checkpoint)
    meta = dict(num_images=num_images, done=0, complete=False, num_tokens=n, vocab_size=tokenizer.vocab_size,
                num_variants=variants, world_size=world, augment=augment,
                crop_range=crop_range if augment == 'tencrop' else None, split=split,
                tokenizer_config=osp.abspath(config), checkpoint=osp.abspath(checkpoint),
                checkpoint_size=identity['size'], checkpoint_sha256=identity['sha256'],
                classes=list(dataset.metainfo.get('classes', ())))
    # What decides the tokens: a folder made with another tokenizer, data or settings is never resumed.
    record = dict(checkpoint=identity, tokenizer=cfg.model.tokenizer.to_dict(),
                  dataset=cfg[f'{split}_dataloader'].dataset.to_dict(), split=split,
                  classes=meta['classes'], num_images=num_images, augment=augment,
                  crop_range=meta['crop_range'], world_size=world)
    has_outputs = osp.isfile(meta_path) or bool(glob.glob(osp.join(out, '*.npy')))
    claim_folder(out, record, has_outputs, 'tokens', write=rank == 0)  # ProvenanceError: another folder's
    if dist.is_initialized():
        dist.barrier()  # every rank has checked the folder before rank 0 writes into it
    if rank == 0 and not osp.isfile(meta_path):
        write_token_meta(out, meta)
    # Rank r takes images r, r + world, ...
    mine = np.arange(rank, num_images, world)
    paths = shard_paths(out, rank, world)
    dtype = np.int16 if tokenizer.vocab_size <= np.iinfo(np.int16).max else np.int32
    mode = 'r+' if osp.isfile(paths['done']) else 'w+'
    tokens = np.lib.format.open_memmap(paths['tokens'], mode=mode, dtype=dtype,
                                       shape=(len(mine), variants, n))
    labels = np.lib.format.open_memmap(paths['labels'], mode=mode, dtype=np.int64, shape=(len(mine),))
    done = np.lib.format.open_memmap(paths['done'], mode=mode, dtype=np.bool_, shape=(len(mine),))
    todo = np.flatnonzero(~done)
    if rank == 0:
        print(f'encoding {num_images} images of the {split} split into {n} tokens x {variants} '
              f'variant(s) with {world} process(es); {len(mine) - len(todo)} already done on this rank',
              flush=True)
    loader = torch.utils.data.DataLoader(_Tolerant(dataset, mine[todo]), batch_size=batch_size,
                                         num_workers=num_workers, collate_fn=list)
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
                         for view in augmented_views(images, augment, crop_range)]
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
        finished = sum(int(np.load(shard_paths(out, r, world)['done'], mmap_mode='r').sum())
                       for r in range(world))
        meta.update(done=finished, complete=finished == num_images)
        write_token_meta(out, meta)
        print(f'\nwrote {finished} of {num_images} images to {out}', flush=True)
