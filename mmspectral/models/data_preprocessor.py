"""Moves uint8 image batches to the device and maps them to the value range the model trains in."""
from typing import Optional, Sequence

from mmengine.model import ImgDataPreprocessor

from mmspectral.registry import MODELS


@MODELS.register_module()
class ImageDataPreprocessor(ImgDataPreprocessor):
    """``x -> lo + (hi - lo) * x / 255`` for uint8 RGB batches, on the model's device.

    Args:
        value_range: ``(lo, hi)`` of the model's input images: ``(0, 1)`` as TiTok (default), or ``(-1, 1)``.
        pad_size_divisor, pad_value, non_blocking: as MMEngine's ImgDataPreprocessor.
    """

    def __init__(self, value_range: Sequence[float] = (0.0, 1.0), pad_size_divisor: int = 1,
                 pad_value: float = 0, non_blocking: Optional[bool] = False) -> None:
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise ValueError('ImageDataPreprocessor: value_range must be (lo, hi) with hi > lo, '
                             f'got {value_range}.')
        std = 255.0 / (hi - lo)
        self.value_range = (lo, hi)
        super().__init__(mean=(-lo * std,) * 3, std=(std,) * 3, pad_size_divisor=pad_size_divisor,
                         pad_value=pad_value, bgr_to_rgb=False, rgb_to_bgr=False, non_blocking=non_blocking)
