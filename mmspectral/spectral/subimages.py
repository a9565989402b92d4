"""Sub-images for 2x super-resolution by spectral completion (paper section 4.4), and the band they hold.

An S x S image is cut into four (S / 2) x (S / 2) sub-images, either strided (pixels ``(i::2, j::2)``,
``'stride'``) or as its quadrants (``'patch'``), in the order (0, 0), (0, 1), (1, 0), (1, 1). Each is
up-sampled to S x S (bicubic), so it holds only the DCT band below S / 2 of the S-pixel grid; the generator
then completes the band above. :func:`reassemble_subimages` puts four S x S results back into one 2S x 2S
image (strided ones interleaved, quadrants tiled): it is the exact inverse of :func:`split_subimages` without
up-sampling.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .dct import dct2

__all__ = ['SUBIMAGE_MODES', 'split_subimages', 'reassemble_subimages', 'upsample', 'band_energy_above']

SUBIMAGE_MODES = ('stride', 'patch')
OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _check_mode(mode: str) -> None:
    if mode not in SUBIMAGE_MODES:
        raise ValueError(f'Sub-image mode must be one of {SUBIMAGE_MODES}, got {mode!r}.')


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of (B, C, H, W) images in [0, 1] to ``size`` x ``size``, clamped to [0, 1]."""
    return F.interpolate(images.float(), size=(size, size), mode='bicubic', align_corners=False).clamp(0, 1)


def split_subimages(images: torch.Tensor, mode: str = 'stride', size: Optional[int] = None) -> torch.Tensor:
    """Cut images (B, C, S, S) into four sub-images of S / 2 and up-sample each to ``size`` (default S).

    ``size=S // 2`` (no up-sampling) gives the raw sub-images. Returns (B, 4, C, size, size) in the order
    (0, 0), (0, 1), (1, 0), (1, 1): row offset / quadrant row first.
    """
    _check_mode(mode)
    if images.dim() != 4 or images.shape[-1] != images.shape[-2] or images.shape[-1] % 2:
        raise ValueError(f'split_subimages takes square images (B, C, S, S) with an even S, got '
                         f'{tuple(images.shape)}.')
    s = images.shape[-1]
    h = s // 2
    if mode == 'stride':
        subs = [images[..., i::2, j::2] for i, j in OFFSETS]
    else:
        subs = [images[..., i * h:(i + 1) * h, j * h:(j + 1) * h] for i, j in OFFSETS]
    subs = torch.stack(subs, 1)  # (B, 4, C, S / 2, S / 2)
    size = s if size is None else int(size)
    if size == h:
        return subs
    b, _, c = subs.shape[:3]
    return upsample(subs.flatten(0, 1), size).view(b, 4, c, size, size)


def reassemble_subimages(subs: torch.Tensor, mode: str = 'stride') -> torch.Tensor:
    """Four sub-images (B, 4, C, T, T) -> one image (B, C, 2T, 2T):
    interleaved ('stride') or tiled ('patch')."""
    _check_mode(mode)
    if subs.dim() != 5 or subs.shape[1] != 4:
        raise ValueError(f'reassemble_subimages takes (B, 4, C, T, T), got {tuple(subs.shape)}.')
    b, _, c, t, _ = subs.shape
    out = subs.new_empty(b, c, 2 * t, 2 * t)
    for n, (i, j) in enumerate(OFFSETS):
        if mode == 'stride':
            out[..., i::2, j::2] = subs[:, n]
        else:
            out[..., i * t:(i + 1) * t, j * t:(j + 1) * t] = subs[:, n]
    return out


def band_energy_above(images: torch.Tensor, cutoff: int) -> torch.Tensor:
    """Share of each image's DCT energy (mean removed) outside the top-left
    ``cutoff`` x ``cutoff`` block (B,)."""
    coeffs = dct2(images.double() - images.double().mean(dim=(-2, -1), keepdim=True)) ** 2
    total = coeffs.sum(dim=(-3, -2, -1))
    inside = coeffs[..., :cutoff, :cutoff].sum(dim=(-3, -2, -1))
    return ((total - inside) / total.clamp_min(1e-30)).float()
