"""Image loading that reports unreadable files by path instead of failing somewhere downstream."""
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from mmspectral.registry import TRANSFORMS


class CorruptImageError(OSError):
    """An image file that cannot be read or decoded completely. ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f'Cannot use image {path}: {reason}. Remove or replace the file (or drop it from '
                         'the list file); training datasets skip such files by default (skip_corrupt=True).')
        self.path = path
        self.reason = reason


def _truncated_jpeg(data: bytes) -> bool:
    # A complete JPEG ends with the EOI marker FF D9 (possibly followed by padding); OpenCV decodes a
    # truncated one silently, filling the missing rows with grey.
    return data[:2] == b'\xff\xd8' and b'\xff\xd9' not in data[-1024:]


def decode_image(data: bytes, path: str = '<bytes>') -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 ``(H, W, 3)`` array, raising :class:`CorruptImageError`."""
    if not data:
        raise CorruptImageError(path, 'the file is empty')
    if _truncated_jpeg(data):
        raise CorruptImageError(path, 'the JPEG data is truncated (no end-of-image marker)')
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise CorruptImageError(path, 'the data could not be decoded as an image')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@TRANSFORMS.register_module()
class LoadImage(BaseTransform):
    """Read ``results['img_path']`` into ``results['img']`` (RGB uint8, ``(H, W, 3)``).

    Adds ``img_shape`` and ``ori_shape`` as ``(H, W)``. A missing, empty, undecodable or truncated file raises
    :class:`CorruptImageError` naming the path; the dataset decides whether to skip it.

    Args:
        backend_args: MMEngine file backend arguments (local disk by default).
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except (OSError, ValueError) as exc:
            raise CorruptImageError(path, f'it could not be read ({exc})') from exc
        img = decode_image(data, path)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
