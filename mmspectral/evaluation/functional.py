"""Image-quality measures on tensors in [0, 1]."""
import functools

import torch
import torch.nn.functional as F


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
