"""Image loading that reports unreadable files by path instead of failing somewhere downstream."""
import logging
from collections import Counter
from typing import Dict, Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.logging import print_log

from mmspectral.registry import TRANSFORMS
from .image_header import ImageHeader, read_header


class CorruptImageError(OSError):
    """An image file that cannot be read or decoded completely. ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f'Cannot use image {path}: {reason}. Remove or replace the file (or drop it from '
                         'the list file); training datasets skip such files by default (skip_corrupt=True).')
        self.path = path
        self.reason = reason


class ImageTooLargeError(ValueError):
    """An image with more pixels than a caller accepts, found from its header before it is decoded."""

    def __init__(self, path: str, width: int, height: int, max_pixels: int) -> None:
        super().__init__(f'Image {path} is {width} x {height} = {width * height / 1e6:.1f} megapixels; at '
                         f'most {max_pixels / 1e6:g} megapixels are accepted here. Resize it first.')
        self.path, self.width, self.height, self.max_pixels = path, width, height, max_pixels


# What decoding to 8-bit RGB does to an image that is not 8-bit RGB: said once per process for each kind.
CONVERSIONS = {
    'greyscale': 'greyscale images are converted to RGB (three equal channels)',
    'alpha': 'alpha channels (transparency) are dropped: the RGB values are kept as stored, not blended onto '
             'a background',
    '16-bit': 'images of more than 8 bits per channel are reduced to 8 bits (a 16-bit value v becomes '
              'v // 256, so 65535 -> 255)',
}
_converted: Counter = Counter()


def converted_images() -> Dict[str, int]:
    """How many decoded images of each kind of :data:`CONVERSIONS` this process has converted."""
    return dict(_converted)


def _note_conversions(header: ImageHeader, path: str) -> None:
    for kind, applies in (('greyscale', header.grey), ('alpha', header.alpha), ('16-bit', header.bits > 8)):
        if applies:
            _converted[kind] += 1
            if _converted[kind] == 1:
                print_log(f'Image {path} is the first {kind} image this process decodes: '
                          f'{CONVERSIONS[kind]}. Said once per process; the count is in '
                          'mmspectral.datasets.transforms.converted_images().', logger='current',
                          level=logging.WARNING)


def decode_image(data: bytes, path: str = '<bytes>', max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 ``(H, W, 3)`` array, raising :class:`CorruptImageError`.

    Greyscale, alpha and 16-bit images are converted to 8-bit RGB (see :data:`CONVERSIONS`; each kind is
    logged once per process). A JPEG must reach its end-of-image marker; data after the marker (e.g. the video
    of a motion photo) is ignored. With ``max_pixels``, an image whose header gives more pixels (or no size)
    raises :class:`ImageTooLargeError` before it is decoded.
    """
    if not data:
        raise CorruptImageError(path, 'the file is empty')
    header = read_header(data)
    if header is not None and not header.complete:
        # OpenCV would decode it silently, filling the missing rows with grey
        raise CorruptImageError(path, f'the JPEG data is truncated (its {len(data)} bytes end before the '
                                'end-of-image marker: the file was cut short, e.g. by an interrupted '
                                'download or copy)')
    if max_pixels is not None:
        if header is None:
            raise CorruptImageError(path, 'its size could not be read from its header (expected a JPEG, PNG, '
                                    'WebP, BMP or TIFF image), so it is not decoded')
        if header.width * header.height > max_pixels:
            raise ImageTooLargeError(path, header.width, header.height, max_pixels)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise CorruptImageError(path, 'the data could not be decoded as an image')
    if header is not None:
        _note_conversions(header, path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@TRANSFORMS.register_module()
class LoadImage(BaseTransform):
    """Read ``results['img_path']`` into ``results['img']`` (RGB uint8, ``(H, W, 3)``).

    Adds ``img_shape`` and ``ori_shape`` as ``(H, W)``. A missing, empty, undecodable or truncated file raises
    :class:`CorruptImageError` naming the path; the dataset decides whether to skip it. Greyscale, alpha and
    16-bit images become 8-bit RGB, logged once per process for each kind (:func:`decode_image`).

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
