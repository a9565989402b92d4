"""Orthonormal 2D DCT-II, its inverse, and DCT low-pass filtering, as batched matrix products.

The transforms act on the last two dimensions of ``(..., H, W)`` tensors. With the orthonormal DCT-II matrix
``C_n[k, x] = a_k cos(pi (2x + 1) k / 2n)`` (``a_0 = sqrt(1/n)``, ``a_k = sqrt(2/n)``), which is the basis of
the paper's eq. 2, ``dct2(X) = C_H X C_W^T`` and ``idct2(D) = C_H^T D C_W``. Matrices are built once in
float64 and cached per (size, dtype, device). Half-precision inputs are transformed in float32 and cast back,
because a bf16 matmul would lose the small high-frequency coefficients that the targets are made of.
"""
import functools
import math
from typing import Tuple, Union

import torch

from mmspectral.utils.checks import check_range

__all__ = ['dct_matrix', 'dct2', 'idct2', 'lowpass', 'lowpass_projector', 'axis_cutoffs']


@functools.lru_cache(maxsize=64)
def _dct_matrix_cached(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    x = torch.arange(n, dtype=torch.float64)[None, :]
    mat = torch.cos(math.pi * (2 * x + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    mat[0] /= math.sqrt(2.0)
    return mat.to(dtype=dtype, device=device)


def dct_matrix(n: int, dtype: torch.dtype = torch.float32,
               device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
    """The orthonormal ``(n, n)`` DCT-II matrix: row k is the k-th cosine basis vector.
    Cached; do not modify."""
    if n < 1:
        raise ValueError(f'DCT size must be positive, got {n}.')
    return _dct_matrix_cached(int(n), dtype, torch.device(device))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    if not torch.is_floating_point(x):
        raise TypeError(f'The DCT needs a floating-point tensor, got {x.dtype}. Convert images with .float() '
                        '(and scale them to the value range you train in) first.')
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _check_2d(x: torch.Tensor, name: str) -> None:
    if x.dim() < 2:
        raise ValueError(f'{name} expects a tensor of shape (..., H, W), got shape {tuple(x.shape)}.')


def _separable(x: torch.Tensor, name: str, inverse: bool) -> torch.Tensor:
    _check_2d(x, name)
    dtype = _compute_dtype(x)
    c_h = dct_matrix(x.shape[-2], dtype, x.device)
    c_w = dct_matrix(x.shape[-1], dtype, x.device)
    out = c_h.T @ x.to(dtype) @ c_w if inverse else c_h @ x.to(dtype) @ c_w.T
    return out.to(x.dtype)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2D DCT-II over the last two dims; same shape, dtype and device as ``x``; differentiable."""
    return _separable(x, 'dct2', inverse=False)


def idct2(d: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2` (the DCT-III with orthonormal scaling)."""
    return _separable(d, 'idct2', inverse=True)


def axis_cutoffs(omega: Union[int, torch.Tensor], height: int, width: int,
                 size: Union[int, None] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """How many DCT rows and columns a cut-off ``omega`` keeps on an ``height x width`` image.

    ``omega`` counts frequencies on a side of ``size`` pixels (default: the shorter side). On a non-square
    image each axis keeps the same fraction ``omega / size`` of its own frequencies, i.e. the same cut-off in
    cycles per pixel, rounded to the nearest integer and clipped to ``[0, axis length]``. On a square image of
    side ``size`` both cut-offs equal ``omega``.

    Returns:
        Two long tensors with the shape of ``omega`` (0-d for an int): kept rows and kept columns.
    """
    size = min(height, width) if size is None else int(size)
    omega_t = torch.as_tensor(omega)
    if omega_t.is_floating_point():
        raise TypeError(f'omega must hold integers (a number of kept frequencies), got {omega_t.dtype}.')
    check_range(omega_t, 0, float('inf'), 'omega must be >= 0')
    omega_t = omega_t.long()

    def _scale(length: int) -> torch.Tensor:
        if length == size:
            return omega_t.clamp(max=length)
        # Integer rounding of omega * length / size, half away from zero.
        return ((omega_t * 2 * length + size) // (2 * size)).clamp(max=length)

    return _scale(height), _scale(width)


def lowpass_projector(n: int, keep: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``C^T diag(1[k < keep]) C`` for each entry of ``keep``: shape ``keep.shape + (n, n)``.

    Applying it along one axis keeps the first ``keep`` DCT coefficients of that axis and transforms back.
    """
    c = dct_matrix(n, dtype, device)  # (n, n)
    mask = (torch.arange(n, device=device) < keep.to(device)[..., None]).to(dtype)  # (..., n)
    return (c.T * mask[..., None, :]) @ c


def lowpass(x: torch.Tensor, omega: Union[int, torch.Tensor], size: Union[int, None] = None) -> torch.Tensor:
    """Keep the top-left ``omega x omega`` block of each channel's DCT and transform back.

    This is the paper's target ``I'_k = IDCT(DCT(I) * 1_{w_k})`` (eq. 5).

    Args:
        x: images ``(B, ..., H, W)`` (or ``(H, W)`` / ``(C, H, W)`` with an int ``omega``), floating point.
        omega: an int for the whole batch, or a tensor of ``B`` ints, one per sample (one pass, no loop over
            B).
        size: the side length ``omega`` refers to; see :func:`axis_cutoffs` for non-square images.

    Returns:
        The low-pass images, same shape, dtype and device as ``x``. ``omega >= size`` returns ``x`` up to
        float rounding; ``omega = 0`` returns zeros.
    """
    _check_2d(x, 'lowpass')
    dtype = _compute_dtype(x)
    h, w = x.shape[-2:]
    omega_t = torch.as_tensor(omega, device=x.device)
    if omega_t.dim() > 1:
        raise ValueError(f'omega must be an int or a 1-D tensor of per-sample values, got shape '
                         f'{tuple(omega_t.shape)}.')
    if omega_t.dim() == 1 and (x.dim() < 3 or omega_t.shape[0] != x.shape[0]):
        raise ValueError(f'A per-sample omega of length {omega_t.shape[0]} needs x of shape (B, ..., H, W) '
                         f'with B = {omega_t.shape[0]}, got {tuple(x.shape)}.')
    keep_h, keep_w = axis_cutoffs(omega_t, h, w, size)
    p_h = lowpass_projector(h, keep_h, dtype, x.device)  # (H, H) or (B, H, H)
    # A square image keeps the same count on both axes (axis_cutoffs computes both alike): one projector.
    p_w = p_h if h == w else lowpass_projector(w, keep_w, dtype, x.device)
    if omega_t.dim() == 1:
        # Broadcast each sample's projector over its remaining (channel) dims.
        extra = x.dim() - 3
        p_h = p_h.reshape(p_h.shape[:1] + (1,) * extra + p_h.shape[1:])
        p_w = p_w.reshape(p_w.shape[:1] + (1,) * extra + p_w.shape[1:])
    # Projectors are symmetric, so P_h X P_w^T = P_h X P_w.
    return (p_h @ x.to(dtype) @ p_w).to(x.dtype)
