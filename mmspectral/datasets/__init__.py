from .embedded import CLASSES as EMBEDDED_CLASSES
from .embedded import EmbeddedShapesDataset, export_embedded_shapes, render_shape
from .image_folder import ImageFolderDataset
from .token_dataset import PackTokenInputs, TokenDataset
from .transforms import CorruptImageError, LoadImage, PackImageInputs, RandomCrop, ResizeShorter

__all__ = ['EmbeddedShapesDataset', 'render_shape', 'export_embedded_shapes', 'EMBEDDED_CLASSES',
           'ImageFolderDataset', 'TokenDataset', 'PackTokenInputs', 'LoadImage', 'CorruptImageError', 'ResizeShorter', 'RandomCrop', 'PackImageInputs']
