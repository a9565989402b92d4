"""Moves uint8 image batches to the device and maps them to the value range the model trains in."""
from typing import Optional, Sequence

from mmengine.model import ImgDataPreprocessor

from mmspectral.registry import MODELS
from mmspectral.utils.value_range import UNIT_RANGE, check_value_range, uint8_normalisation


@MODELS.register_module()
class ImageDataPreprocessor(ImgDataPreprocessor):
    """``x -> lo + (hi - lo) * x / 255`` for uint8 RGB batches, on the model's device.

    Args:
        value_range: ``(lo, hi)`` of the model's input images: ``(0, 1)`` as TiTok (default), or ``(-1, 1)``.
            Inside a TokenizerModel or GeneratorModel leave it out: the model passes its tokenizer's
            ``value_range``, and a different one is refused.
        pad_size_divisor, pad_value, non_blocking: as MMEngine's ImgDataPreprocessor.
    """

    def __init__(self, value_range: Optional[Sequence[float]] = None, pad_size_divisor: int = 1,
                 pad_value: float = 0, non_blocking: Optional[bool] = False) -> None:
        self.value_range = check_value_range(UNIT_RANGE if value_range is None else value_range,
                                             'ImageDataPreprocessor')
        mean, std = uint8_normalisation(self.value_range)
        super().__init__(mean=(mean,) * 3, std=(std,) * 3, pad_size_divisor=pad_size_divisor,
                         pad_value=pad_value, bgr_to_rgb=False, rgb_to_bgr=False, non_blocking=non_blocking)
