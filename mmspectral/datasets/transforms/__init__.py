from mmcv.transforms import CenterCrop, RandomFlip

from mmspectral.registry import TRANSFORMS
from .formatting import PackImageInputs
from .image_header import ImageHeader, read_header
from .loading import (CONVERSIONS, CorruptImageError, ImageTooLargeError, LoadImage, converted_images,
                      decode_image)
from .processing import RandomCrop, ResizeShorter, crop_output_size

__all__ = ['LoadImage', 'CorruptImageError', 'ImageTooLargeError', 'decode_image', 'converted_images',
           'CONVERSIONS', 'ImageHeader', 'read_header', 'ResizeShorter', 'RandomCrop', 'PackImageInputs',
           'CenterCrop', 'RandomFlip', 'output_size_rule']

# mmcv's centre crop and flip, registered here so that configs name them without a scope prefix.
for _transform in (CenterCrop, RandomFlip):
    TRANSFORMS.register_module(module=_transform)

#: How transforms of other packages change the image side (``rule(args) -> side or None``); a transform of
#: this package declares it itself as ``output_size(args)``.
_OUTPUT_SIZE_RULES = {CenterCrop: crop_output_size}


def output_size_rule(cls):
    """``output_size(args)`` of a transform or dataset class (the side of the square images it yields, from
    its config arguments, or None), or None when the class does not say. Used by the config checks."""
    return getattr(cls, 'output_size', None) or _OUTPUT_SIZE_RULES.get(cls)
