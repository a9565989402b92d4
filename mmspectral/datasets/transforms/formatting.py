"""Packing a pipeline's results into the ``inputs`` / ``data_samples`` pair that MMEngine models take."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from mmspectral.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackImageInputs(BaseTransform):
    """Pack ``img`` as a uint8 ``(3, H, W)`` tensor and the label / meta information as a data sample.

    Images stay uint8 until the model's data preprocessor (``ImageDataPreprocessor``) moves them to the device
    and maps them to the configured value range, which keeps host memory and worker traffic small.

    Args:
        meta_keys: keys of ``results`` copied into the data sample's metainfo when present.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_path', 'ori_shape', 'img_shape', 'sample_idx', 'flip')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))  # (3, H, W) uint8
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if 'gt_label' in results:
            sample.gt_label = torch.as_tensor(results['gt_label'], dtype=torch.long)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
