"""Image-quality measures on tensors in [0, 1]."""
import functools
from typing import Dict, Sequence

import torch
import torch.nn.functional as F

from mmspectral.spectral import dct2


def psnr(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0, eps: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: (B, C, H, W) -> (B,).
    Identical images give 10*log10(1/eps)."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(max_val ** 2 / (mse + eps))


@functools.lru_cache(maxsize=8)
def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()  # (size, size)


def ssim(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image: (B, C, H, W) -> (B,).

    Gaussian window of ``window`` x ``window`` (sigma 1.5), K1 = 0.01, K2 = 0.03, statistics over the valid
    region (no padding), averaged over channels and positions. Images smaller than the window use a window
    as large as the image.
    """
    c = pred.shape[1]
    size = min(window, pred.shape[-1], pred.shape[-2])
    kernel = _gaussian_window(size, sigma, pred.device)[None, None].repeat(c, 1, 1, 1)  # (C, 1, s, s)
    x, y = pred.float(), target.float()

    def filt(t):
        return F.conv2d(t, kernel, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x ** 2
    var_y = filt(y * y) - mu_y ** 2
    cov = filt(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    ssim_map = (((2 * mu_x * mu_y + c1) * (2 * cov + c2))
                / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)))
    return ssim_map.flatten(1).mean(1)


def blockiness(images: torch.Tensor, patch_size: int) -> float:
    """Patch seams: the mean absolute step between neighbouring pixels across patch boundaries over the mean
    absolute step elsewhere, horizontally and vertically together. ``images`` (B, C, H, W).

    Natural images give about 1.0; a decoder that draws each patch alone gives more (visible seams).
    """
    x = images.float()
    steps_w = (x[..., :, 1:] - x[..., :, :-1]).abs()  # step between columns j and j + 1
    steps_h = (x[..., 1:, :] - x[..., :-1, :]).abs()
    cols = (torch.arange(steps_w.shape[-1], device=x.device) + 1) % patch_size == 0
    rows = (torch.arange(steps_h.shape[-2], device=x.device) + 1) % patch_size == 0
    across = steps_w[..., cols].sum() + steps_h[..., rows, :].sum()
    n_across = steps_w[..., cols].numel() + steps_h[..., rows, :].numel()
    within = steps_w[..., ~cols].sum() + steps_h[..., ~rows, :].sum()
    n_within = steps_w[..., ~cols].numel() + steps_h[..., ~rows, :].numel()
    return float((across / max(n_across, 1)) / (within / max(n_within, 1)).clamp_min(1e-12))


def region_errors(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> Dict[str, float]:
    """How far ``pred`` is from ``target`` inside a region given per pixel by ``weights`` (B, H, W) in [0, 1]
    (for EmbeddedShapes, the object's coverage; ``1 - coverage`` for the background). Images (B, 3, H, W) in
    [0, 1]. Images whose region is empty are left out.

    Returns ``colour_error``: the Euclidean RGB distance between the region's mean colours, averaged over
    images (0 to sqrt(3); a hue drawn wrong gives about 0.3 or more, a slightly dull one 0.05); ``pixel_mae``:
    the mean absolute error per pixel and channel in the region; ``psnr``: PSNR (dB, peak 1) of the region's
    mean squared error, averaged over images.
    """
    if pred.shape != target.shape or pred.dim() != 4 or weights.shape != (pred.shape[0],) + pred.shape[2:]:
        raise ValueError(f'region_errors: need images (B, C, H, W) of one shape and weights (B, H, W), got '
                         f'{tuple(pred.shape)}, {tuple(target.shape)} and {tuple(weights.shape)}.')
    w = weights.float().unsqueeze(1)
    total = w.flatten(1).sum(1)  # (B,)
    keep = total > 0
    if not bool(keep.any()):
        raise ValueError('region_errors: the region is empty in every image.')
    pred, target, w, total = pred.float()[keep], target.float()[keep], w[keep], total[keep]
    mean_pred = (pred * w).flatten(2).sum(2) / total[:, None]  # (B, C)
    mean_target = (target * w).flatten(2).sum(2) / total[:, None]
    channels = pred.shape[1]
    mae = ((pred - target).abs() * w).flatten(1).sum(1) / (total * channels)
    mse = ((pred - target) ** 2 * w).flatten(1).sum(1) / (total * channels)
    return dict(colour_error=float((mean_pred - mean_target).norm(dim=1).mean()), pixel_mae=float(mae.mean()),
                psnr=float((-10 * torch.log10(mse.clamp_min(1e-10))).mean()))


def band_psnr(pred: torch.Tensor, target: torch.Tensor, edges: Sequence[int]) -> Dict[str, float]:
    """Where in the spectrum ``pred`` (B, C, H, W) misses ``target``: the error's energy in each DCT band,
    as a PSNR (dB, peak 1), averaged over images.

    Band ``[lo, hi)`` holds the orthonormal DCT coefficients (u, v) with ``lo <= max(u, v) < hi``: the
    top-left ``hi x hi`` block less the ``lo x lo`` one, the blocks the frequency schedules keep. Each band's
    mean squared error is its error energy over all ``C H W`` values, so the bands' errors add up to the
    image's (Parseval); a band that holds little error gives a high PSNR. ``edges`` increasing from 0 to at
    most min(H, W); keys ``'w{lo}-{hi}'``.
    """
    edges = [int(e) for e in edges]
    size = min(pred.shape[-2:])
    if (len(edges) < 2 or edges[0] != 0 or edges[-1] > size
            or any(b <= a for a, b in zip(edges, edges[1:]))):
        raise ValueError(f'band_psnr: edges must increase from 0 to at most {size}, got {edges}.')
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f'band_psnr: need two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} '
                         f'and {tuple(target.shape)}.')
    err = dct2(pred.float() - target.float()) ** 2  # (B, C, H, W)
    h, w = err.shape[-2:]
    reach = torch.maximum(torch.arange(h)[:, None], torch.arange(w)[None, :])  # max(u, v) per coefficient
    out = {}
    for lo, hi in zip(edges, edges[1:]):
        band = ((reach >= lo) & (reach < hi)).to(err.device)
        mse = (err * band).flatten(1).sum(1) / err[0].numel()  # (B,)
        out[f'w{lo}-{hi}'] = float((-10 * torch.log10(mse.clamp_min(1e-10))).mean())
    return out


#: Mean absolute change (pixels in [0, 1]) from which a step of a progression counts as visible: two grey
#: levels of 255 on average over the whole image (a change confined to the object's edges is larger there).
VISIBLE_STEP = 2.0 / 255.0


def progression_steps(images: Sequence[torch.Tensor], visible: float = VISIBLE_STEP) -> Dict[str, object]:
    """How much a coarse-to-fine progression changes from one prefix to the next.

    ``images``: the decodes of prefixes ``k = 1..K`` (or the low-pass targets ``lowpass(x, w_k)``), each
    (B, C, H, W) in [0, 1]. Returns ``step_change``: for ``k = 2..K`` the mean absolute change
    ``|x_k - x_{k-1}|`` over pixels, channels and images; ``visible_steps``: how many of them reach
    ``visible``; ``visible``: the threshold used.
    """
    if len(images) < 2:
        raise ValueError(f'progression_steps: need the images of at least two prefixes, got {len(images)}.')
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        raise ValueError('progression_steps: every prefix needs images (B, C, H, W) of one shape, '
                         f'got {shapes}.')
    changes = [float((b.float() - a.float()).abs().mean()) for a, b in zip(images[:-1], images[1:])]
    return dict(step_change=changes, visible_steps=sum(c >= visible for c in changes), visible=float(visible))


def position_perplexity(ids: torch.Tensor, codebook_size: int) -> list:
    """exp(entropy) of the codes each position uses over the images: (B, N) ids -> N floats (how many codes
    a position spends)."""
    out = []
    for column in ids.T:
        p = torch.bincount(column, minlength=codebook_size).double() / len(column)
        p = p[p > 0]
        out.append(float(torch.exp(-(p * p.log()).sum())))
    return out
