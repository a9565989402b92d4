"""The progressive codec in a few lines (docs/codec.md): images in, one file's bytes per image out; any scan
prefix of a file decodes to the tokenizer's reconstruction from that many tokens.

>>> files = compress(model, images, classes=['disk', 'ring'])      # list of bytes
>>> decompress(model, files[0]).shape                               # all tokens the file holds
torch.Size([3, 64, 64])
>>> bits_per_image(model, images, ['disk', 'ring']).shape          # ideal bits of every prefix
(2, 16)
"""
import numbers
import warnings
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch

from mmspectral.codec import SCAN_MODES, decode_file, encode_images, prefix_bits
from mmspectral.codec.container import unpack
from .images import from_batch, to_batch
from .inference import _device, _generator_model, _is_int, _labels, _what

__all__ = ['compress', 'decompress', 'bits_per_image', 'codec_info', 'PartialFileWarning']


class PartialFileWarning(UserWarning):
    """A codec file was cut: it decoded to the scans it holds, fewer tokens than were coded."""


def _codec_labels(model, classes, count: int) -> torch.Tensor:
    """One label per image; ``None``: the null class (an unconditional stream)."""
    if classes is None:
        return torch.full((count,), model.gen.num_classes, dtype=torch.long, device=_device(model))
    labels = _labels(model, classes)
    if len(labels) == 1 and count > 1:
        labels = labels.repeat(count)
    if len(labels) != count:
        raise ValueError(f'Pass one class, or one per image: {len(labels)} classes for {count} images.')
    return labels


def _images(model, images: Any) -> torch.Tensor:
    batch, _, _ = to_batch(images, model.codec.image_size)
    return batch.to(_device(model))


def _positive(func: str, name: str, value: Any, integer: bool) -> None:
    ok = (_is_int(value) if integer else isinstance(value, numbers.Real) and not isinstance(value, bool))
    if value is not None and not (ok and value > 0):
        kind = 'an integer > 0' if integer else 'a number > 0'
        raise (ValueError if ok else TypeError)(
            f'{func}: {name} must be {kind} (or None), got {_what(value)}.')


@torch.no_grad()
def compress(model, images: Any, classes=None, *, num_tokens: Optional[int] = None,
             scans: Union[str, Sequence[int]] = 'tokens', target_psnr: Optional[float] = None,
             max_bytes: Optional[int] = None) -> List[bytes]:
    """Code ``images`` (any kind ``reconstruct`` takes) with the generator's probabilities: one file each.

    ``classes``: a class (index or name) or one per image, coded in the file; None codes with the null class
    (an unconditional stream). ``scans``: 'tokens' (one scan per token, the default), 'bands' (one per
    frequency band of the tokenizer's schedule) or a list of prefix lengths. ``num_tokens`` codes only a
    prefix; ``target_psnr`` keeps each image's shortest scan prefix that reaches this PSNR (dB) against the
    input; ``max_bytes`` the longest prefix whose file fits."""
    _generator_model(model, 'compress')
    n = model.gen.num_tokens
    if num_tokens is not None and not (_is_int(num_tokens) and 1 <= num_tokens <= n):
        raise ValueError(f'compress: num_tokens must be an integer in [1, {n}], got {_what(num_tokens)}.')
    if isinstance(scans, str) and scans not in SCAN_MODES:
        raise ValueError(f'compress: scans must be one of {SCAN_MODES} or a list of prefix lengths, got '
                         f'{scans!r}.')
    if not isinstance(scans, str) and not (isinstance(scans, (list, tuple, range)) and len(scans)
                                           and all(_is_int(t) and 1 <= t <= n for t in scans)):
        raise ValueError(f'compress: scans as a list must hold prefix lengths in [1, {n}], '
                         f'got {_what(scans)}.')
    _positive('compress', 'target_psnr', target_psnr, integer=False)
    _positive('compress', 'max_bytes', max_bytes, integer=True)
    batch = _images(model, images)
    labels = _codec_labels(model, classes, len(batch))
    return encode_images(model, batch, labels.tolist(), num_tokens=num_tokens, scans=scans,
                         target_psnr=target_psnr, max_bytes=max_bytes)


@torch.no_grad()
def decompress(model, data: Union[bytes, Sequence[bytes]], k: Optional[int] = None, output: str = 'tensor'):
    """A file's bytes (whole, or cut after any scan) -> the image of its first ``k`` tokens (default: all it
    holds; a cut file warns with :class:`PartialFileWarning`); a list of files -> a batch. ``output``:
    'tensor' (3, H, W) in [0, 1], 'numpy' (uint8) or 'pil'."""
    _generator_model(model, 'decompress')
    if k is not None and not _is_int(k):
        raise TypeError(f'decompress: k must be an integer (a prefix length) or None, got {_what(k)}.')
    single = isinstance(data, (bytes, bytearray, memoryview))
    items = [data] if single else list(data)
    if not items:
        raise ValueError('decompress: pass the bytes of a codec file, or a non-empty list of them.')
    images = []
    for i, item in enumerate(items):
        decoded = decode_file(model, item, k)
        if not decoded.complete and k is None:
            header = decoded.header
            warnings.warn(f'decompress: file {i} was cut; it holds {decoded.tokens.shape[1]} of its '
                          f'{header.num_tokens} tokens and decodes to their image.', PartialFileWarning,
                          stacklevel=3)
        images.append(decoded.image)
    return from_batch(torch.cat(images), output, single)


@torch.no_grad()
def bits_per_image(model, images: Any, classes=None) -> np.ndarray:
    """The ideal code length (bits) of every prefix of each image's tokens under the generator, without
    guidance: an array (B, N) whose entry [b, k - 1] is ``-log2 p(s_1..s_k | class)``. The coded file's
    payload is within a few bytes of the last entry (docs/codec.md)."""
    _generator_model(model, 'bits_per_image')
    batch = _images(model, images)
    labels = _codec_labels(model, classes, len(batch))
    return prefix_bits(model, batch, labels).cpu().numpy()


def codec_info(data: bytes) -> dict:
    """What a codec file's header says (no model needed): sizes, class, tokens, scans and their byte ends."""
    header, words = unpack(data)
    info = header.to_dict()
    info.update(file_bytes=len(data), payload_bytes=4 * len(words), header_bytes=len(data) - 4 * len(words),
                scans_held=sum(s.words <= len(words) for s in header.scans))
    return info
