"""Token ids extracted once by ``tools/extract_tokens.py``, memory-mapped (DATASETS)."""
import os.path as osp
from typing import List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.structures import BaseDataElement

from mmspectral.fileio.token_folder import (EXTRACT_HINT, TOKEN_FOLDER_META, read_token_meta, shard_paths,
                                            token_meta_problems)
from mmspectral.registry import DATASETS, GENERATORS, TRANSFORMS
from mmspectral.utils.build import effective_arguments

#: Names this module had before the format moved to :mod:`mmspectral.fileio.token_folder`.
META_FILE = TOKEN_FOLDER_META
read_meta = read_token_meta


@TRANSFORMS.register_module()
class PackTokenInputs(BaseTransform):
    """``tokens`` (N,) -> ``inputs`` LongTensor (N,); ``gt_label`` into a data sample."""

    def transform(self, results: dict) -> dict:
        sample = BaseDataElement(metainfo=dict(sample_idx=results.get('sample_idx')))
        sample.gt_label = torch.as_tensor(results['gt_label'], dtype=torch.long)
        return dict(inputs=torch.from_numpy(np.asarray(results['tokens'], dtype=np.int64)),
                    data_samples=sample)


@DATASETS.register_module()
class TokenDataset(BaseDataset):
    """Class-labelled token sequences: ``(num_images, num_variants, N)`` ids in memory-mapped shards.

    Each image may have several variants (e.g. the tokens of the image and of its horizontal flip); training
    draws one at random per access, evaluation uses the first.

    Args:
        data_root: the folder ``tools/extract_tokens.py --out`` wrote.
        variant: 'random', 'first', or a variant index.
        expected_num_tokens / expected_vocab_size: if given, must match the extraction (a clear error if not).
        pipeline: defaults to ``[PackTokenInputs]``.
        test_mode, lazy_init, indices, serialize_data, max_refetch: as MMEngine's BaseDataset.
    """

    def __init__(self, data_root: str, variant: Union[str, int] = 'random',
                 expected_num_tokens: Optional[int] = None, expected_vocab_size: Optional[int] = None,
                 pipeline: Sequence = (dict(type='PackTokenInputs'),), test_mode: bool = False,
                 lazy_init: bool = False, indices=None, serialize_data: bool = True, max_refetch: int = 1000):
        self.meta = read_token_meta(data_root)
        for key, want in (('num_tokens', expected_num_tokens), ('vocab_size', expected_vocab_size)):
            if want is not None and self.meta[key] != want:
                raise ValueError(f'Tokens in {data_root!r} have {key}={self.meta[key]} but the model expects '
                                 f'{want}: they were extracted with another tokenizer. Extract again with '
                                 'the tokenizer the generator is configured for.')
        valid_index = isinstance(variant, int) and 0 <= variant < self.meta['num_variants']
        if variant not in ('random', 'first') and not valid_index:
            raise ValueError("variant must be 'random', 'first' or an index below "
                             f"{self.meta['num_variants']}, got {variant!r}.")
        self.variant = variant
        self._arrays = None
        super().__init__(data_root=data_root, pipeline=list(pipeline), test_mode=test_mode,
                         lazy_init=lazy_init, indices=indices, serialize_data=serialize_data,
                         max_refetch=max_refetch,
                         metainfo=dict(classes=tuple(self.meta.get('classes', ()))))

    @classmethod
    def check_config(cls, ds: Mapping, where: str = 'dataset', cfg: Optional[Mapping] = None) -> List[str]:
        """The problems of a config of this dataset found before it is built: missing or unfinished tokens,
        and tokens of another tokenizer than ``cfg``'s generator expects (the config checks call this)."""
        problems = []
        root = osp.expanduser(str(ds.get('data_root') or ''))
        meta_path = osp.join(root, TOKEN_FOLDER_META)
        if not osp.isfile(meta_path):
            what = 'does not exist' if not osp.isdir(root) else \
                f'holds no extracted tokens (no {TOKEN_FOLDER_META})'
            problems.append(f'{where}.data_root={root!r} {what}. Extract the tokens first: {EXTRACT_HINT}.')
            return problems
        try:
            meta = read_token_meta(root, require_complete=False)
        except (OSError, ValueError) as exc:
            problems.append(f'{where}: {meta_path} is unreadable ({exc}). Extract the tokens again.')
            return problems
        if not meta.get('complete'):
            problems.append(f'{where}: the token extraction in {root!r} is unfinished. Run the same '
                            'tools/extract_tokens.py command again: it continues where it stopped.')
        model = (cfg or {}).get('model')
        generator = model.get('generator') if isinstance(model, Mapping) else None
        gen = {}
        if isinstance(generator, Mapping):
            gen_cls = GENERATORS.get(generator['type']) if isinstance(generator.get('type'), str) else None
            gen = effective_arguments(gen_cls, generator) if gen_cls is not None else dict(generator)
        expected = {key: ((ds.get(f'expected_{key}'), f'{where}.expected_{key}'),
                          (gen.get(key), f'model.generator.{key}')) for key in ('num_tokens', 'vocab_size')}
        checkpoint = model.get('tokenizer_checkpoint') if isinstance(model, Mapping) else None
        return problems + token_meta_problems(meta, root, where, expected, checkpoint)

    def _open(self):
        # Opened lazily in each worker process: memory maps do not survive pickling.
        if self._arrays is None:
            world = self.meta['world_size']
            self._arrays = [(np.load(shard_paths(self.data_root, r, world)['tokens'], mmap_mode='r'),
                             np.load(shard_paths(self.data_root, r, world)['labels'], mmap_mode='r'))
                            for r in range(world)]
        return self._arrays

    def load_data_list(self) -> List[dict]:
        data_list = []
        for shard, (_, labels) in enumerate(self._open()):
            labels = np.asarray(labels)
            for row in np.flatnonzero(labels >= 0):  # label -1: an image that could not be read
                data_list.append(dict(shard=shard, row=int(row), gt_label=int(labels[row])))
        self._arrays = None
        return data_list

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        tokens = self._open()[info['shard']][0][info['row']]  # (V, N)
        if self.variant == 'random' and not self.test_mode:
            v = np.random.randint(tokens.shape[0])
        elif self.variant in ('random', 'first'):
            v = 0
        else:
            v = self.variant
        info['tokens'] = np.array(tokens[v])
        return info

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_arrays'] = None
        return state
