"""Sub-images for 2x super-resolution by spectral completion (paper section 4.4), and the band they hold.

An S x S image is cut into four (S / 2) x (S / 2) sub-images, either strided (pixels ``(i::2, j::2)``,
``'stride'``) or as its quadrants (``'patch'``), in the order (0, 0), (0, 1), (1, 0), (1, 1). Each is
up-sampled to S x S (bicubic), so it holds only the DCT band below S / 2 of the S-pixel grid; the generator
then completes the band above. :func:`reassemble_subimages` puts four S x S results back into one 2S x 2S
image (strided ones interleaved, quadrants tiled): it is the exact inverse of :func:`split_subimages` without
up-sampling.

Each up-sampled sub-image is sampled on the grid of the 2S image it will fill, so that split -> up-sample ->
reassemble with no refinement is (close to) the bicubic 2x up-sampling of the whole image. Along one axis,
with pixel centres at integer coordinates, pixel p of the 2S image sits at p / 2 - 1 / 4 of the S image. A
quadrant's plain bicubic up-sampling (half-pixel centres, ``align_corners=False``) lands there already. A
strided sub-image i (pixel n at 2n + i) fills the 2S pixels p = 2m + i, so its pixel m is sampled at
sub-image coordinate m / 2 - 1 / 8 - i / 4: the plain up-sampling's m / 2 - 1 / 4 moved by 1 / 8 - i / 4
(+1/8 for i = 0, -1/8 for i = 1). Plain up-sampling there would put 2S pixels 2m + 1 and 2m + 2 on the same
scene point (a 2-pixel staircase, half a pixel off).
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .dct import dct2

__all__ = ['SUBIMAGE_MODES', 'split_subimages', 'reassemble_subimages', 'upsample', 'bicubic_resample',
           'band_energy_above']

SUBIMAGE_MODES = ('stride', 'patch')
OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _check_mode(mode: str) -> None:
    if mode not in SUBIMAGE_MODES:
        raise ValueError(f'Sub-image mode must be one of {SUBIMAGE_MODES}, got {mode!r}.')


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of (B, C, H, W) images in [0, 1] to ``size`` x ``size``, clamped to [0, 1]."""
    return F.interpolate(images.float(), size=(size, size), mode='bicubic', align_corners=False).clamp(0, 1)


def bicubic_resample(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Bicubic samples of images (B, C, H, W) at the grid ``rows`` (Y,) x ``cols`` (X,) -> (B, C, Y, X).

    Coordinates are in input pixels with pixel centres at integers (0 .. H - 1). The kernel is the one of
    :func:`upsample` (cubic convolution, a = -0.75, taps past the border repeat the edge pixel), so
    ``rows = cols = (arange(size) + 0.5) * H / size - 0.5`` gives :func:`upsample` without its clamp.
    """
    if images.dim() != 4 or rows.dim() != 1 or cols.dim() != 1:
        raise ValueError(f'bicubic_resample takes images (B, C, H, W) and 1-D rows / cols, got '
                         f'{tuple(images.shape)}, {tuple(rows.shape)}, {tuple(cols.shape)}.')
    h, w = images.shape[-2:]
    gy = (2 * rows.double() + 1) / h - 1  # grid_sample's [-1, 1] with half-pixel centres
    gx = (2 * cols.double() + 1) / w - 1
    grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), -1)  # (Y, X, 2): x first
    grid = grid.to(images.device, torch.float32).expand(images.shape[0], -1, -1, -1)
    return F.grid_sample(images.float(), grid, mode='bicubic', padding_mode='border', align_corners=False)


def _stride_coords(s: int, size: int, offset: int) -> torch.Tensor:
    """Where pixel m of strided sub-image ``offset``, up-sampled to ``size``, sits in the sub-image (size,):
    the centre of 2 x ``size`` pixel 2m + offset of the whole S-pixel image, (2m + offset + 1/2) S / (2 size)
    - 1/2, in sub-image pixels ((x - offset) / 2)."""
    m = torch.arange(size, dtype=torch.float64)
    return ((2 * m + offset + 0.5) * s / (2 * size) - 0.5 - offset) / 2


def split_subimages(images: torch.Tensor, mode: str = 'stride', size: Optional[int] = None) -> torch.Tensor:
    """Cut images (B, C, S, S) into four sub-images of S / 2 and up-sample each to ``size`` (default S).

    ``size=S // 2`` (no up-sampling) gives the raw sub-images. Returns (B, 4, C, size, size) in the order
    (0, 0), (0, 1), (1, 0), (1, 1): row offset / quadrant row first. Up-sampling is bicubic, clamped to
    [0, 1], on the grid of the 2 x ``size`` image :func:`reassemble_subimages` builds (module docstring): a
    quadrant is up-sampled plainly, a strided sub-image (i, j) at rows and columns shifted by 1/8 - i/4 and
    1/8 - j/4 of its pixels (at ``size=S``).
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
    size = s if size is None else int(size)
    if size < 1:
        raise ValueError(f'split_subimages: size must be at least 1, got {size}.')
    if size == h:
        return torch.stack(subs, 1)  # (B, 4, C, S / 2, S / 2)
    if mode == 'patch':
        return torch.stack([upsample(sub, size) for sub in subs], 1)  # (B, 4, C, size, size)
    coords = [_stride_coords(s, size, offset) for offset in (0, 1)]
    return torch.stack([bicubic_resample(sub, coords[i], coords[j]).clamp(0, 1)
                        for sub, (i, j) in zip(subs, OFFSETS)], 1)  # (B, 4, C, size, size)


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
