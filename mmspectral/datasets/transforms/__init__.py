from mmcv.transforms import CenterCrop, RandomFlip

from mmspectral.registry import TRANSFORMS
from .formatting import PackImageInputs
from .loading import CorruptImageError, LoadImage, decode_image
from .processing import RandomCrop, ResizeShorter

__all__ = ['LoadImage', 'CorruptImageError', 'decode_image', 'ResizeShorter', 'RandomCrop', 'PackImageInputs',
           'CenterCrop', 'RandomFlip']

# mmcv's centre crop and flip, registered here so that configs name them without a scope prefix.
for _transform in (CenterCrop, RandomFlip):
    TRANSFORMS.register_module(module=_transform)
