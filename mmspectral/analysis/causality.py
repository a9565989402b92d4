"""How well does each token of a sequence follow linearly from the tokens before it? (paper section 4.2)

The paper's toy experiment (Table 1, Figure 4) cuts images into 4-element sequences three ways and measures
the R^2 of a linear regression of token ``t_j`` on ``t_1..t_{j-1}``. This module builds those sequences, fits
the regressions on one split of the images and scores them on another, finds for each element its best single
predictor among earlier elements, and encodes images with a trained tokenizer so that its learned tokens get
the same statistics. docs/causality.md defines every quantity exactly; tools/analysis/causality.py runs it
all.

Every token is a tensor ``(B, ...)`` whose trailing dims are its elements (pixels and channels, or embedding
dims); a sequence is a list of them.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from mmspectral.datasets import EMBEDDED_CLASSES, render_shape
from mmspectral.datasets.transforms import LoadImage, ResizeShorter
from mmspectral.spectral import lowpass
from mmspectral.utils.value_range import check_value_range, from_unit

__all__ = ['load_images', 'raster_tokens', 'scale_tokens', 'spectral_tokens', 'split_indices', 'heldout_r2',
           'sequence_r2', 'pairwise_r2', 'luminance_elements', 'best_single_r2', 'frame_maps',
           'encode_learned_tokens']

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


# --------------------------------------------------------------------------- images
def load_images(num_images: int, image_size: int, seed: int = 2, image_dir: Optional[str] = None,
                class_set: str = 'fine') -> torch.Tensor:
    """``num_images`` RGB images as float64 ``(B, 3, S, S)`` in [0, 1].

    Without ``image_dir``: EmbeddedShapes images ``0..B-1`` of split ``seed`` (label ``i % 10``) of the class
    set ``class_set``, drawn at ``image_size``. With it: the first ``num_images`` image files under the folder
    (recursive, sorted paths), shorter side resized to ``image_size`` (bicubic, antialiased) and
    centre-cropped.
    """
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}.')
    if image_dir is None:
        imgs = [render_shape(seed, i, i % len(EMBEDDED_CLASSES), image_size, class_set)
                for i in range(num_images)]
    else:
        paths = sorted(osp.join(root, name) for root, _, names in os.walk(image_dir) for name in names
                       if name.lower().endswith(IMG_EXTENSIONS))
        if len(paths) < num_images:
            raise ValueError(f'{image_dir} holds {len(paths)} images with endings {IMG_EXTENSIONS}, fewer '
                             f'than the {num_images} asked for; '
                             'lower --num-images or point at a larger folder.')
        load, resize = LoadImage(), ResizeShorter(image_size)
        imgs = []
        for path in paths[:num_images]:
            img = resize(load(dict(img_path=path)))['img']
            h, w = img.shape[:2]
            top, left = (h - image_size) // 2, (w - image_size) // 2
            imgs.append(img[top:top + image_size, left:left + image_size])
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).double() / 255.0


# --------------------------------------------------------------------------- the three sequences
def raster_tokens(images: torch.Tensor) -> List[torch.Tensor]:
    """The four quadrants in raster order (top-left, top-right, bottom-left, bottom-right), each
    ``(B, C, S/2, S/2)``: the image's own pixels, no padding. Tiling them back gives the image."""
    h, w = images.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f'Raster quadrants need an even image size, got {h}x{w}.')
    hh, hw = h // 2, w // 2
    return [images[..., :hh, :hw], images[..., :hh, hw:], images[..., hh:, :hw], images[..., hh:, hw:]]


def scale_tokens(images: torch.Tensor, sides: Sequence[int], cumulative: bool = False) -> List[torch.Tensor]:
    """VAR's multi-scale residual sequence, without quantisation, each token ``(B, C, S, S)``.

    With ``f_0 = 0``: ``z_k = area_downsample(image - f_{k-1}, sides[k])``, token
    ``t_k = bicubic_upsample(z_k, S)`` and ``f_k = f_{k-1} + t_k``. The last side must be S, so ``f_L`` is the
    image. ``cumulative`` returns the reconstructions ``f_k`` (the image seen at scale k) instead of the
    residuals ``t_k``.
    """
    size = images.shape[-1]
    sides = [int(s) for s in sides]
    if sides[-1] != size or any(b <= a for a, b in zip(sides[:-1], sides[1:])) or sides[0] < 1:
        raise ValueError(f'Scale sides must increase and end at the image size {size}, got {sides}.')
    f_hat = torch.zeros_like(images)
    tokens, partial = [], []
    for side in sides:
        z = F.interpolate(images - f_hat, size=(side, side), mode='area')  # (B, C, side, side)
        t = z if side == size else F.interpolate(z, size=(size, size), mode='bicubic', align_corners=False)
        f_hat = f_hat + t
        tokens.append(t)
        partial.append(f_hat)
    return partial if cumulative else tokens


def spectral_tokens(images: torch.Tensor, omegas: Sequence[int],
                    cumulative: bool = False) -> List[torch.Tensor]:
    """Spectral sequence, each token ``(B, C, S, S)`` in pixel space.

    Token j is the image content of the DCT band ``w_{j-1} <= max(u, v) < w_j`` (``w_0 = 0``), i.e.
    ``lowpass(image, w_j) - lowpass(image, w_{j-1})``; the bands sum to the image when ``w_L = S``.
    ``cumulative`` returns the low-pass sub-images ``lowpass(image, w_j)`` themselves (the paper's ``I'_j``).
    """
    size = images.shape[-1]
    omegas = [int(w) for w in omegas]
    if omegas[-1] != size or any(b <= a for a, b in zip(omegas[:-1], omegas[1:])) or omegas[0] < 1:
        raise ValueError(f'Cut-offs must increase and end at the image size {size}, got {omegas}.')
    low = [lowpass(images, w) for w in omegas]
    if cumulative:
        return low
    return [low[0]] + [b - a for a, b in zip(low[:-1], low[1:])]


# --------------------------------------------------------------------------- regression
def split_indices(num: int, train_fraction: float = 0.75, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(num)`` into (train, test) index tensors; both non-empty."""
    n_train = int(round(num * train_fraction))
    if not 2 <= n_train <= num - 2:
        raise ValueError(f'A split of {num} images with train_fraction={train_fraction} leaves {n_train} for '
                         f'fitting and {num - n_train} for testing; both need at least 2 images.')
    perm = torch.randperm(num, generator=torch.Generator().manual_seed(seed))
    return perm[:n_train].sort().values, perm[n_train:].sort().values


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _predictor_scores(x_train: torch.Tensor, x_test: torch.Tensor,
                      pca_dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Centred predictors, or their projections on the top ``pca_dim`` principal axes of the fit split when
    they have more than ``pca_dim`` columns. PCA goes through the fit split's Gram matrix (``n x n``), so it
    costs ``n^2 p`` whatever the number of columns ``p``. Returns (n_train, d) and (n_test, d) float64."""
    mean = x_train.mean(0, keepdim=True)
    xc_train, xc_test = x_train - mean, x_test - mean
    if pca_dim <= 0 or x_train.shape[1] <= pca_dim:
        return xc_train.double(), xc_test.double()
    # The n x p products dominate the cost and run in float32; the eigenproblem is small and runs in float64.
    gram = (xc_train.float() @ xc_train.float().T).double()  # (n_train, n_train)
    evals, evecs = torch.linalg.eigh(gram)
    evals, evecs = evals.flip(0), evecs.flip(1)
    keep = int(min(pca_dim, (evals > evals[0].clamp(min=1e-30) * 1e-9).sum()))
    # Principal axes V = Xc^T U / s; scores of the fit split are U s, of the test split Xc_test V.
    u, s = evecs[:, :keep], evals[:keep].sqrt()
    cross = (xc_test.float() @ xc_train.float().T).double()  # (n_test, n_train)
    return u * s, cross @ u / s


def heldout_r2(x: torch.Tensor, y: torch.Tensor, train_idx: torch.Tensor, test_idx: torch.Tensor,
               pca_dim: int = 128) -> Dict[str, object]:
    """Least squares with intercept of every column of ``y`` on ``x``, fitted on ``train_idx``, scored on
    ``test_idx``.

    Args:
        x: predictors ``(B, ...)``, flattened to ``(B, p)``; reduced by PCA to ``pca_dim`` axes (fitted on the
            fit split) when ``p > pca_dim``; ``pca_dim <= 0`` keeps them all.
        y: targets ``(B, ...)``, flattened to ``(B, m)``: one regression per element, sharing the predictors.

    Returns:
        ``r2_avg``: the mean over elements of ``1 - SSE_e / SST_e`` on the test split (``SST_e`` about the
        test mean; elements constant on the test split are left out); ``r2_pooled``:
        ``1 - sum SSE / sum SST``, which weights elements by their variance; ``per_element`` (m,) float64 (NaN
        where left out); ``num_predictors``: the regressors besides the intercept.
    """
    x, y = _flat(x), _flat(y).double()
    z_train, z_test = _predictor_scores(x[train_idx], x[test_idx], pca_dim)
    a_train = torch.cat([torch.ones(len(train_idx), 1, dtype=torch.float64), z_train], 1)  # (n_train, d + 1)
    a_test = torch.cat([torch.ones(len(test_idx), 1, dtype=torch.float64), z_test], 1)
    coef = torch.linalg.lstsq(a_train, y[train_idx], driver='gelsd').solution  # (d + 1, m)
    y_test = y[test_idx]
    sse = (y_test - a_test @ coef).pow(2).sum(0)
    sst = (y_test - y_test.mean(0, keepdim=True)).pow(2).sum(0)
    valid = sst > sst.max().clamp(min=1e-300) * 1e-12
    if not valid.any():
        raise ValueError('Every target element is constant on the test split; R^2 is undefined.')
    per = torch.full_like(sst, float('nan'))
    per[valid] = 1 - sse[valid] / sst[valid]
    return dict(r2_avg=float(per[valid].mean()), r2_pooled=float(1 - sse[valid].sum() / sst[valid].sum()),
                per_element=per, num_predictors=int(z_train.shape[1]))


def sequence_r2(tokens: Sequence[torch.Tensor], train_idx: torch.Tensor, test_idx: torch.Tensor,
                pca_dim: int = 128) -> List[Dict[str, float]]:
    """Held-out R^2 of ``t_j`` on ``t_1..t_{j-1}`` (concatenated) for j = 2..L: a list of L - 1 dicts with
    ``j``, ``r2_avg``, ``r2_pooled`` and ``num_predictors`` (see :func:`heldout_r2`)."""
    rows = []
    for j in range(1, len(tokens)):
        x = torch.cat([_flat(t) for t in tokens[:j]], 1)
        res = heldout_r2(x, tokens[j], train_idx, test_idx, pca_dim)
        rows.append(dict(j=j + 1, r2_avg=res['r2_avg'], r2_pooled=res['r2_pooled'],
                         num_predictors=res['num_predictors']))
    return rows


def pairwise_r2(tokens: Sequence[torch.Tensor], train_idx: torch.Tensor, test_idx: torch.Tensor,
                pca_dim: int = 128) -> np.ndarray:
    """``(L, L)`` matrix whose entry ``[j, i]`` (0-based, i < j) is the held-out ``r2_avg`` of ``t_j`` on
    ``t_i`` alone; NaN on and above the diagonal."""
    n = len(tokens)
    out = np.full((n, n), np.nan)
    for j in range(1, n):
        for i in range(j):
            out[j, i] = heldout_r2(tokens[i], tokens[j], train_idx, test_idx, pca_dim)['r2_avg']
    return out


# --------------------------------------------------------------------------- best single predictor (Figure 4)
def luminance_elements(tokens: Sequence[torch.Tensor], stride: int = 1) -> List[torch.Tensor]:
    """Image tokens ``(B, C, h, w)`` -> their regression elements: the mean over channels of every
    ``stride``-th pixel, ``(B, ceil(h / stride), ceil(w / stride))`` each."""
    return [t.mean(1)[:, ::stride, ::stride] for t in tokens]


def _moments(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column means, column norms of the centred columns, and the columns centred and scaled to unit norm
    (constant columns become zeros) of (n, e)."""
    mean = x.mean(0, keepdim=True)
    xc = x - mean
    norm = xc.norm(dim=0, keepdim=True)
    return mean, norm, torch.where(norm > 1e-12, xc / norm.clamp(min=1e-12), torch.zeros_like(xc))


def best_single_r2(tokens: Sequence[torch.Tensor], train_idx: torch.Tensor, test_idx: torch.Tensor,
                   chunk: int = 1024) -> List[Dict[str, object]]:
    """For every element of ``t_j`` (j >= 2), its best single predictor among the elements of
    ``t_1..t_{j-1}``, and how well that one predictor does on held-out images.

    The source element with the highest squared correlation on the fit split is chosen (Figure 4 counts these
    choices); a least-squares line with intercept from it, fitted on the fit split, is scored on the test
    split.

    Args:
        tokens: ``(B, ...)`` each; trailing dims are the elements.

    Returns:
        One dict per j = 2..L: ``j``, ``r2_avg`` (mean held-out R^2 over t_j's non-constant elements),
        ``r2_pooled`` (``1 - sum SSE / sum SST``), ``source_token`` (e_j,) 0-based index of the chosen source
        token, ``source_index`` (e_j,) flat index of the chosen element inside it, ``per_element`` (e_j,) the
        held-out R^2 (NaN for elements constant on the test split).
    """
    flat = [_flat(t).double() for t in tokens]
    fit = [_moments(f[train_idx]) for f in flat]  # (mean, norm, unit columns) of each token on the fit split
    rows = []
    for j in range(1, len(flat)):
        sizes = torch.tensor([f.shape[1] for f in flat[:j]])
        ends = torch.cumsum(sizes, 0)
        sources = torch.cat([fit[i][2] for i in range(j)], 1)  # (n_train, P) unit columns
        sources32 = sources.float()
        src_mean = torch.cat([fit[i][0] for i in range(j)], 1)[0]
        src_norm = torch.cat([fit[i][1] for i in range(j)], 1)[0]
        src_test = torch.cat([flat[i][test_idx] for i in range(j)], 1)
        t_mean, t_norm, t_unit = fit[j]
        best, corr_best = [], []
        for c0 in range(0, t_unit.shape[1], chunk):
            corr = t_unit[:, c0:c0 + chunk].float().T @ sources32  # (chunk, P), float32 for speed
            idx = corr.abs().argmax(1)
            best.append(idx)
            # the chosen ones in float64
            corr_best.append((t_unit[:, c0:c0 + chunk] * sources[:, idx]).sum(0))
        best, corr_best = torch.cat(best), torch.cat(corr_best)
        slope = corr_best * t_norm[0] / src_norm[best].clamp(min=1e-300)
        slope = torch.where(src_norm[best] > 1e-12, slope, torch.zeros_like(slope))
        y_test = flat[j][test_idx]
        pred = t_mean + slope * (src_test[:, best] - src_mean[best])
        sse = (y_test - pred).pow(2).sum(0)
        sst = (y_test - y_test.mean(0, keepdim=True)).pow(2).sum(0)
        valid = sst > sst.max().clamp(min=1e-300) * 1e-12
        per = torch.full_like(sst, float('nan'))
        per[valid] = 1 - sse[valid] / sst[valid]
        tok = torch.searchsorted(ends, best, right=True)
        rows.append(dict(j=j + 1, r2_avg=float(per[valid].mean()),
                         r2_pooled=float(1 - sse[valid].sum() / sst[valid].sum()), source_token=tok,
                         source_index=best - (ends - sizes)[tok], per_element=per))
    return rows


def frame_maps(rows: Sequence[Dict[str, object]], shapes: Sequence[Tuple[int, int]],
               offsets: Sequence[Tuple[int, int]], frame: Tuple[int, int]) -> List[Dict[str, np.ndarray]]:
    """Place the results of :func:`best_single_r2` on 2D element maps into a common frame (Figure 4).

    Args:
        shapes: ``(h, w)`` of each token's element map; ``offsets``: where its top-left element sits in the
            ``frame`` (the quadrant corner for raster tokens, ``(0, 0)`` for full-size ones).

    Returns:
        Per j = 2..L: ``best_token`` (frame) 1-based source token of each element of t_j, 0 outside t_j;
        ``best_r2`` (frame) its held-out R^2, NaN outside; ``counts`` ``(j - 1,) + frame``: how many elements
        of t_j chose each source element.
    """
    out = []
    for row in rows:
        j = row['j'] - 1
        counts = np.zeros((j,) + tuple(frame), np.int64)
        for i in range(j):
            (h, w), (oy, ox) = shapes[i], offsets[i]
            chosen = row['source_index'][row['source_token'] == i]
            counts[i, oy:oy + h, ox:ox + w] = torch.bincount(chosen, minlength=h * w).reshape(h, w).numpy()
        (h, w), (oy, ox) = shapes[j], offsets[j]
        best_token = np.zeros(frame, np.int64)
        best_r2 = np.full(frame, np.nan)
        best_token[oy:oy + h, ox:ox + w] = (row['source_token'] + 1).reshape(h, w).numpy()
        best_r2[oy:oy + h, ox:ox + w] = row['per_element'].reshape(h, w).numpy()
        out.append(dict(best_token=best_token, best_r2=best_r2, counts=counts))
    return out


# --------------------------------------------------------------------------- learned tokens
@torch.no_grad()
def encode_learned_tokens(tokenizer, images: torch.Tensor, value_range: Sequence[float] = (0.0, 1.0),
                          space: str = 'latent', batch_size: int = 100) -> List[torch.Tensor]:
    """A tokenizer's N tokens of each image, as a list of N tensors ``(B, D)`` (float64).

    Args:
        images: ``(B, 3, S, S)`` in [0, 1]; mapped to the tokenizer's ``value_range`` as its data preprocessor
            does.
        space: 'latent' (the encoder's pre-quantisation output, ``encode_continuous``) or 'quantized' (the
            codebook vector each token was assigned, as the decoder and the generator see it).
    """
    if space not in ('latent', 'quantized'):
        raise ValueError(f"space must be 'latent' or 'quantized', got {space!r}.")
    value_range = check_value_range(value_range, 'encode_learned_tokens')
    device = next(tokenizer.parameters()).device
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        x = from_unit(images[start:start + batch_size], value_range).float().to(device)
        latents = tokenizer.encode_continuous(x)  # (b, N, D)
        chunks.append((latents if space == 'latent' else tokenizer.quantize(latents)[0]).double().cpu())
    seq = torch.cat(chunks)  # (B, N, D)
    return list(seq.unbind(1))
