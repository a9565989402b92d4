"""Geometric transforms of the tokenizer pipelines that mmcv does not provide.

Centre crop and horizontal flip come from mmcv (``CenterCrop``, ``RandomFlip``).
"""
from typing import Optional, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from mmspectral.registry import TRANSFORMS

_PIL_FILTERS = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC,
                'lanczos': Image.LANCZOS, 'box': Image.BOX}


def _pair(size: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


@TRANSFORMS.register_module()
class ResizeShorter(BaseTransform):
    """Resize so that the shorter side equals ``size``, keeping the aspect ratio.

    Uses Pillow's resampling, which low-pass filters when shrinking (antialiasing), as the TiTok / ADM
    pipelines do. Updates ``img`` and ``img_shape``.

    Args:
        size: target length of the shorter side in pixels.
        interpolation: 'bicubic' (default), 'bilinear', 'lanczos', 'box' or 'nearest'.
    """

    def __init__(self, size: int, interpolation: str = 'bicubic') -> None:
        if interpolation not in _PIL_FILTERS:
            raise ValueError(f'ResizeShorter: unknown interpolation {interpolation!r}; use one of '
                             f'{sorted(_PIL_FILTERS)}.')
        self.size = int(size)
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        scale = self.size / min(h, w)
        new_h, new_w = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        if (new_h, new_w) != (h, w):
            img = np.asarray(Image.fromarray(img).resize((new_w, new_h), _PIL_FILTERS[self.interpolation]))
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size}, interpolation={self.interpolation!r})'


def crop_output_size(args) -> Optional[int]:
    """The side of the square crop a crop transform's ``crop_size`` asks for (None: not square)."""
    crop = args.get('crop_size')
    crop = tuple(crop) if isinstance(crop, (list, tuple)) else (crop, crop)
    return crop[0] if len(crop) == 2 and crop[0] == crop[1] and isinstance(crop[0], int) else None


@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """Crop a random ``(height, width)`` window; the image must be at least that large.

    Args:
        crop_size: an int for a square crop, or ``(height, width)``.
    """

    def __init__(self, crop_size: Union[int, Tuple[int, int]]) -> None:
        self.crop_size = _pair(crop_size)

    output_size = staticmethod(crop_output_size)  # for the config checks

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        ch, cw = self.crop_size
        if h < ch or w < cw:
            raise ValueError(f'RandomCrop{self.crop_size}: image {results.get("img_path", "")} is only '
                             f'{h}x{w}; put ResizeShorter(size >= crop size) before the crop.')
        top = np.random.randint(0, h - ch + 1)
        left = np.random.randint(0, w - cw + 1)
        results['img'] = np.ascontiguousarray(img[top:top + ch, left:left + cw])
        results['img_shape'] = (ch, cw)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(crop_size={self.crop_size})'
