"""What an encoded image is, read from its header without decoding it: size, channels, bit depth, and for JPEG
whether the data reaches its end-of-image marker."""
import io
import re
import struct
from typing import NamedTuple, Optional

from PIL import Image

__all__ = ['ImageHeader', 'read_header']


class ImageHeader(NamedTuple):
    """The header of an encoded image.

    ``complete`` is False for a JPEG whose data stops before its end-of-image marker (a file cut short: OpenCV
    would decode it anyway, grey below the cut). Data after the marker (the video a motion-photo camera
    appends) is not part of the image and does not matter.
    """
    format: str  # 'jpeg', 'png', or Pillow's format name
    width: int
    height: int
    grey: bool  # one colour channel
    alpha: bool  # an alpha channel or a transparent colour
    bits: int  # bits per channel
    complete: bool = True


# A JPEG marker: FF and a code. FF 00 (a stuffed FF byte), FF D0-D7 (restart markers) and FF FF (fill) occur
# inside entropy-coded data and do not end it.
_JPEG_MARKER = re.compile(rb'\xff[^\x00\xd0-\xd7\xff]')
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-SOF15 (not DHT, JPG, DAC)
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_GREY_MODES = frozenset({'1', 'L', 'LA', 'La', 'I', 'F'})


def read_header(data: bytes) -> Optional[ImageHeader]:
    """The :class:`ImageHeader` of encoded image bytes, or None when no header can be read.

    JPEG and PNG are parsed here (for JPEG, the whole marker structure up to the end-of-image marker, so
    that a cut file is found); other formats are opened with Pillow, which reads only their header.
    """
    if data[:2] == b'\xff\xd8':
        return _jpeg(data)
    if data[:8] == _PNG_SIGNATURE:
        return _png(data)
    try:
        with Image.open(io.BytesIO(data)) as im:
            mode, (width, height) = im.mode, im.size
            deep = mode.startswith('I;16') or mode in ('I', 'F') or any(
                ';16' in str(tile[3]) for tile in im.tile if len(tile) > 3)
            return ImageHeader(str(im.format).lower(), width, height, grey=mode.split(';')[0] in _GREY_MODES,
                               alpha='A' in mode or 'a' in mode or 'transparency' in im.info,
                               bits=16 if deep else 8)
    except Exception:  # Pillow cannot read it: OpenCV may still decode it
        return None


def _jpeg(data: bytes) -> Optional[ImageHeader]:
    """Walk the markers: segments are skipped by their length (so an EXIF thumbnail's own end marker is not
    taken for the image's), entropy-coded data by searching for the next marker, until EOI."""
    frame = None  # (precision, height, width, components) of the first SOFn
    pos = 2
    while True:
        marker = _JPEG_MARKER.search(data, pos)
        if marker is None:
            break  # the data ends before EOI: cut short
        code, pos = data[marker.end() - 1], marker.end()
        if code == 0xD9:  # EOI; anything after it is not the image's
            return None if frame is None else _jpeg_header(frame, complete=True)
        if code in (0xD8, 0x01):  # SOI, TEM: no length
            continue
        if code == 0xDA and frame is not None and data.endswith(b'\xff\xd9'):
            # the usual file: entropy-coded data cannot hold FF D9, so the last two bytes are its EOI
            return _jpeg_header(frame, complete=True)
        if pos + 2 > len(data):
            break
        length = int.from_bytes(data[pos:pos + 2], 'big')
        if code in _JPEG_FRAMES and frame is None and pos + 8 <= len(data):
            frame = (data[pos + 2],) + struct.unpack('>HH', data[pos + 3:pos + 7]) + (data[pos + 7],)
        pos += length
        if pos > len(data):
            break
    return None if frame is None else _jpeg_header(frame, complete=False)


def _jpeg_header(frame: tuple, complete: bool) -> ImageHeader:
    precision, height, width, components = frame
    return ImageHeader('jpeg', width, height, grey=components == 1, alpha=False, bits=precision,
                       complete=complete)


def _png(data: bytes) -> Optional[ImageHeader]:
    """IHDR gives the size, bit depth and colour type; a tRNS chunk before the image data, transparency."""
    if len(data) < 33 or data[12:16] != b'IHDR':
        return None
    width, height, depth, colour = struct.unpack('>IIBB', data[16:26])
    alpha = colour in (4, 6)  # grey + alpha, RGBA
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        if kind == b'IDAT':
            break
        alpha |= kind == b'tRNS'
        pos += 12 + length
    return ImageHeader('png', width, height, grey=colour in (0, 4), alpha=alpha, bits=depth)
