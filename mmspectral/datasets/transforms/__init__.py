from mmcv.transforms import CenterCrop, RandomFlip

from mmspectral.registry import TRANSFORMS
from .formatting import PackImageInputs
from .image_header import ImageHeader, read_header
from .loading import (CONVERSIONS, CorruptImageError, ImageTooLargeError, LoadImage, converted_images,
                      decode_image)
from .processing import RandomCrop, ResizeShorter

__all__ = ['LoadImage', 'CorruptImageError', 'ImageTooLargeError', 'decode_image', 'converted_images',
           'CONVERSIONS', 'ImageHeader', 'read_header', 'ResizeShorter', 'RandomCrop', 'PackImageInputs',
           'CenterCrop', 'RandomFlip']

# mmcv's centre crop and flip, registered here so that configs name them without a scope prefix.
for _transform in (CenterCrop, RandomFlip):
    TRANSFORMS.register_module(module=_transform)
