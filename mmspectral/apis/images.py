"""Images in and out of the inference API: uint8 arrays, PIL images or tensors, one image or a batch."""
from typing import Any, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['to_batch', 'from_batch', 'OUTPUTS']

OUTPUTS = ('tensor', 'numpy', 'pil')


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith('PIL.') and hasattr(obj, 'convert')


def _one(image: Any) -> torch.Tensor:
    """One image -> (3, H, W) float in [0, 1]."""
    if _is_pil(image):
        image = np.array(image.convert('RGB'))  # a writable copy
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ValueError(f'An image array must be (H, W), (H, W, 3) or (H, W, 4), got {image.shape}.')
        image = torch.from_numpy(np.ascontiguousarray(image[..., :3] if image.shape[2] != 1
                                                      else np.repeat(image, 3, axis=2))).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f'Images are uint8 arrays (H, W, 3), PIL images or tensors (3, H, W), '
                        f'not {type(image).__name__}.')
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f'An image tensor must be (3, H, W), got {tuple(image.shape)}.')
    return _unit(image)


def _unit(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise TypeError(f'Images are uint8 (0-255) or float in [0, 1], got {x.dtype}; convert them first, '
                        'e.g. a 16-bit image with (image // 256).astype(np.uint8), or an int image holding '
                        '0-255 values with .astype(np.uint8).')
    x = x.float()
    if x.numel() and (float(x.min()) < -1e-3 or float(x.max()) > 1 + 1e-3):
        raise ValueError(f'Float images must lie in [0, 1], got values in [{float(x.min()):.3g}, '
                         f'{float(x.max()):.3g}]; pass uint8 images, or scale them to [0, 1].')
    return x.clamp(0, 1)


def to_batch(images: Any, size: int = None) -> Tuple[torch.Tensor, str, bool]:
    """``images`` -> ``(batch (B, 3, S, S) float in [0, 1], the input's kind, whether it was one image)``.

    Accepts a tensor (3, H, W) / (B, 3, H, W) (uint8, or float in [0, 1]), a uint8 array (H, W, 3) /
    (B, H, W, 3), a PIL image, or a list of any of these. With ``size``, each image's shorter side is resized
    to ``size`` (bicubic, antialiased) and the centre cropped to a square, as the datasets' pipelines do.
    """
    kind = 'tensor' if isinstance(images, torch.Tensor) else 'numpy' if isinstance(images, np.ndarray) else \
        'pil' if _is_pil(images) else None
    if kind == 'tensor' and images.dim() == 4:
        items, single = list(images), False
    elif kind == 'numpy' and images.ndim == 4:
        items, single = list(images), False
    elif kind is not None:
        items, single = [images], True
    elif isinstance(images, (list, tuple)) and images:
        items, single = list(images), False
        first = items[0]
        kind = 'tensor' if isinstance(first, torch.Tensor) else 'pil' if _is_pil(first) else 'numpy'
    else:
        raise TypeError('Pass an image (uint8 array, PIL image or tensor), a batch of them, or a non-empty '
                        f'list; got {type(images).__name__}.')
    batch: List[torch.Tensor] = [_one(x) for x in items]
    if size is not None:
        batch = [_square(x, size) for x in batch]
    shapes = {tuple(x.shape) for x in batch}
    if len(shapes) != 1:
        raise ValueError(f'The images have different sizes {sorted(shapes)}; pass size=... to resize them.')
    return torch.stack(batch), kind, single


def _square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Shorter side to ``size`` (bicubic, antialiased), then the central ``size x size`` crop."""
    _, h, w = x.shape
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x[None], size=(nh, nw), mode='bicubic', antialias=True, align_corners=False)[0]
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[:, top:top + size, left:left + size].clamp(0, 1)
    return x


def from_batch(batch: torch.Tensor, kind: str, single: bool = False) -> Any:
    """(B, 3, H, W) in [0, 1] -> ``kind``: 'tensor' (float, as is), 'numpy' (uint8 (B, H, W, 3)) or 'pil'
    (a list of PIL images); one image instead of a batch with ``single``."""
    if kind not in OUTPUTS:
        raise ValueError(f'output must be one of {OUTPUTS}, got {kind!r}.')
    batch = batch.detach().float().cpu().clamp(0, 1)
    if kind == 'tensor':
        return batch[0] if single else batch
    arrays = (batch * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if kind == 'numpy':
        return arrays[0] if single else arrays
    from PIL import Image
    images = [Image.fromarray(a) for a in arrays]
    return images[0] if single else images
