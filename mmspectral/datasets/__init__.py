from .embedded import CLASS_SETS as EMBEDDED_CLASS_SETS
from .embedded import CLASSES as EMBEDDED_CLASSES
from .embedded import (EmbeddedShapesDataset, class_set_of, export_embedded_shapes, render_shape,
                       render_shape_and_mask)
from .image_folder import ImageFolderDataset, SkipCorruptMixin, skipped_images_summary
from .token_dataset import PackTokenInputs, TokenDataset
from .transforms import CorruptImageError, LoadImage, PackImageInputs, RandomCrop, ResizeShorter

__all__ = ['EmbeddedShapesDataset', 'render_shape', 'render_shape_and_mask', 'export_embedded_shapes',
           'EMBEDDED_CLASSES', 'EMBEDDED_CLASS_SETS', 'class_set_of', 'SkipCorruptMixin',
           'skipped_images_summary', 'ImageFolderDataset', 'TokenDataset', 'PackTokenInputs', 'LoadImage',
           'CorruptImageError', 'ResizeShorter', 'RandomCrop', 'PackImageInputs']
