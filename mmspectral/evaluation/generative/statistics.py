"""FID, Inception Score and precision/recall from features, with the ADM evaluator's definitions.

* Frechet distance between Gaussians fitted to two feature sets (float64):
  ``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``, ``S = np.cov(features, rowvar=False)``.
* Inception Score: ``exp(E_x KL(p(y|x) || p(y)))`` per split of ``split_size`` consecutive samples (ADM: 5000,
  i.e. 10 splits of the 50,000 samples; the last split is shorter when N is not a multiple), averaged.
* Precision / recall (Kynkaanniemi et al. 2019, as ADM's ``ManifoldEstimator`` with k = 3): every feature
  vector gets the radius of a ball reaching its k-th nearest neighbour within its own set (squared Euclidean
  distances, the point itself counted as the 0-th neighbour). Precision is the fraction of samples inside
  at least one reference ball (``d^2 <= r^2``), recall the fraction of reference images inside at least one
  sample ball.
"""
import warnings
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

__all__ = ['FeatureSet', 'feature_statistics', 'frechet_distance', 'frechet_distance_from_features',
           'inception_score', 'manifold_radii', 'precision_recall', 'fid_bootstrap']


def feature_statistics(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and covariance (D, D), float64 (``np.cov``: divided by N - 1)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f'FID statistics need (N, D) features with N >= 2; got shape {features.shape}.')
    return features.mean(0), np.cov(features, rowvar=False)


def _check_pair(mu1, sigma1, mu2, sigma2) -> Tuple[np.ndarray, ...]:
    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f'Frechet distance needs statistics of the same feature space: got mu '
                         f'{mu1.shape} and {mu2.shape}, sigma {sigma1.shape} and {sigma2.shape}. Were both '
                         'sides computed with the same feature extractor?')
    return mu1, sigma1, mu2, sigma2


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), as the ADM evaluator computes it.

    ``tr((S1 S2)^(1/2))`` comes from ``scipy.linalg.sqrtm``. A non-finite square root (a singular product) is
    computed again with ``eps`` added to both diagonals, with a warning; an imaginary part is dropped when the
    diagonal's is below 1e-3, else a ValueError says how large it is. Slow for D = 2048 on a CPU (tens of
    seconds).
    """
    try:
        from scipy import linalg
    except ImportError as exc:  # scipy is a test extra of the package
        raise ImportError('FID needs scipy (scipy.linalg.sqrtm): pip install scipy') from exc
    mu1, sigma1, mu2, sigma2 = _check_pair(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # scipy's 'matrix is singular' note; checked below
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            warnings.warn(f'FID: the product of the covariances is singular; adding {eps} to their '
                          'diagonals.')
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f'FID: the square root of S1 S2 has an imaginary component of '
                             f'{np.max(np.abs(covmean.imag)):.3g}; the covariances are not valid (PSD).')
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Frechet distance of the Gaussians fitted to two feature sets.

    With at most D vectors per set (small evaluations, tests) the trace term is computed exactly without a
    D x D square root: with centred features A1 (N1, D), A2 (N2, D), ``S1 S2`` has the non-zero eigenvalues of
    ``(A2 A1^T)(A2 A1^T)^T / ((N1 - 1)(N2 - 1))``, so ``tr((S1 S2)^(1/2))`` is the nuclear norm of ``A1 A2^T``
    over ``sqrt((N1 - 1)(N2 - 1))``. Otherwise (the 50k protocol) it is :func:`frechet_distance` on the
    statistics.
    """
    f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f'Frechet distance needs (N, D) features with the same D and N >= 2; got {f1.shape} '
                         f'and {f2.shape}.')
    if max(len(f1), len(f2)) > f1.shape[1]:
        return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    mu1, mu2 = f1.mean(0), f2.mean(0)
    a1, a2 = f1 - mu1, f2 - mu2
    n1, n2 = len(f1) - 1, len(f2) - 1
    tr_covmean = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt(n1 * n2)
    diff = mu1 - mu2
    return float(diff @ diff + (a1 * a1).sum() / n1 + (a2 * a2).sum() / n2 - 2.0 * tr_covmean)


def fid_bootstrap(samples: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray,
                  ref_features: Optional[np.ndarray] = None, replicates: int = 100, seed: int = 0,
                  confidence: float = 0.95) -> Dict[str, object]:
    """How much FID moves when the samples are drawn again: FID of ``replicates`` resamplings of the sample
    features (with replacement, the same count) against the fixed reference. Returns the percentile interval
    at ``confidence`` (``low``, ``high``), the replicates' standard deviation (``std``: the number to quote
    beside an FID), ``bias`` (their mean minus the FID of the samples themselves: FID is biased upwards at a
    finite count, and resampling, which repeats images, adds the same again, so the interval can lie above
    the point estimate; subtract ``bias`` to centre it) and the settings.

    Each replicate's trace term is ``sum(sqrt(eig(R S R)))`` with ``R = ref_sigma^(1/2)`` computed once (the
    same number as ``tr((S ref_sigma)^(1/2))`` for covariances, without a square root per replicate); with at
    most D vectors on both sides and ``ref_features`` given, the exact small-set formula of
    :func:`frechet_distance_from_features`.
    """
    feats = np.asarray(samples, np.float64)
    if feats.ndim != 2 or len(feats) < 2 or replicates < 2 or not 0 < confidence < 1:
        raise ValueError(f'fid_bootstrap needs (N, D) features with N >= 2, replicates >= 2 and a confidence '
                         f'in (0, 1); got {feats.shape}, {replicates}, {confidence}.')
    ref_mu, ref_sigma = np.asarray(ref_mu, np.float64), np.asarray(ref_sigma, np.float64)
    rng = np.random.default_rng(seed)
    n, d = feats.shape
    small = ref_features is not None and max(n, len(ref_features)) <= d
    if not small:
        w, v = np.linalg.eigh((ref_sigma + ref_sigma.T) / 2)
        root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        ref_trace = float(np.trace(ref_sigma))

    def fid(drawn):
        if small:
            return frechet_distance_from_features(drawn, ref_features)
        mu, sigma = feature_statistics(drawn)
        eig = np.linalg.eigvalsh(root @ sigma @ root)
        diff = mu - ref_mu
        trace = np.sqrt(np.clip(eig, 0, None)).sum()
        return float(diff @ diff + np.trace(sigma) + ref_trace - 2.0 * trace)

    values = np.asarray([fid(feats[rng.integers(0, n, n)]) for _ in range(replicates)])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return dict(low=float(low), high=float(high), std=float(values.std(ddof=1)),
                bias=float(values.mean() - fid(feats)), confidence=confidence, replicates=replicates,
                seed=seed, resampled='sample images, with replacement')


def inception_score(logits: np.ndarray, split_size: int = 5000) -> Tuple[float, float]:
    """Inception Score of (N, C) classifier logits (softmax over all C; for Inception C = 1008).

    Splits are ``split_size`` consecutive samples, as ADM (5000: 10 splits of 50,000); the score is the mean
    of ``exp(mean_x KL(p(y|x) || mean_x p(y|x)))`` over splits. Returns (mean, std over splits). For
    probabilities instead of logits pass ``np.log(probs)``. Uniform predictions give 1; confident predictions
    spread evenly over C classes give C.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or len(logits) == 0:
        raise ValueError(f'inception_score needs (N, C) logits; got shape {logits.shape}.')
    if split_size < 1:
        raise ValueError(f'split_size must be >= 1, got {split_size}.')
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))  # (N, C) log-softmax
    scores = []
    for start in range(0, len(log_p), split_size):
        part = log_p[start:start + split_size]
        p = np.exp(part)
        log_py = np.log(p.mean(0, keepdims=True))  # (1, C) marginal
        kl = (p * (part - log_py)).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(M, D), (K, D) -> (M, K) squared Euclidean distances, clamped at 0 (as ADM's DistanceBlock)."""
    d = a.square().sum(1, keepdim=True) - 2.0 * (a @ b.t()) + b.square().sum(1)[None]
    return d.clamp_min_(0.0)


def _as_tensor(features: np.ndarray, device: Union[str, torch.device]) -> torch.Tensor:
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f'precision/recall need (N, D) features; got shape {features.shape}.')
    return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(device)


@torch.no_grad()
def manifold_radii(features: np.ndarray, k: int = 3, chunk_size: int = 5000,
                   device: Union[str, torch.device] = 'cpu') -> np.ndarray:
    """(N,) squared distance of every vector to its k-th nearest neighbour in ``features`` (itself: the 0th).

    Computed in (chunk_size x chunk_size) float32 blocks keeping the k + 1 smallest per row, so 50k x 50k
    needs only a block's memory.
    """
    feats = _as_tensor(features, device)
    n = len(feats)
    if n < k + 1:
        raise ValueError(f'precision/recall with k = {k} need at least {k + 1} feature vectors per set; '
                         f'got {n}.')
    radii = torch.empty(n, dtype=torch.float32, device=feats.device)
    for i in range(0, n, chunk_size):
        rows = feats[i:i + chunk_size]
        best = None  # (R, k + 1) smallest squared distances so far
        for j in range(0, n, chunk_size):
            d = _squared_distances(rows, feats[j:j + chunk_size])
            d = d if best is None else torch.cat([best, d], 1)
            best = d.topk(min(k + 1, d.shape[1]), dim=1, largest=False).values
        radii[i:i + len(rows)] = best[:, k]
    return radii.cpu().numpy()


@torch.no_grad()
def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, chunk_size: int = 5000,
                     device: Union[str, torch.device] = 'cpu') -> Tuple[float, float]:
    """Improved precision and recall of ``fake`` (samples) against ``real`` (reference), both (N, D).

    precision = fraction of fake vectors within the k-NN ball of at least one real vector; recall = fraction
    of real vectors within the k-NN ball of at least one fake vector. ADM computes distances in float16 when
    they are finite; here they are float32, which can flip a vector lying on a ball's boundary.
    """
    r, f = _as_tensor(real, device), _as_tensor(fake, device)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f'precision/recall need features of the same dimension; got {tuple(r.shape)} '
                         f'(reference) and {tuple(f.shape)} (samples).')
    radii_r = torch.from_numpy(manifold_radii(real, k, chunk_size, device)).to(r.device)
    radii_f = torch.from_numpy(manifold_radii(fake, k, chunk_size, device)).to(r.device)
    real_in = torch.zeros(len(r), dtype=torch.bool, device=r.device)
    fake_in = torch.zeros(len(f), dtype=torch.bool, device=r.device)
    for i in range(0, len(r), chunk_size):
        for j in range(0, len(f), chunk_size):
            d = _squared_distances(r[i:i + chunk_size], f[j:j + chunk_size])  # (R, F)
            fake_in[j:j + chunk_size] |= (d <= radii_r[i:i + chunk_size, None]).any(0)
            real_in[i:i + chunk_size] |= (d <= radii_f[None, j:j + chunk_size]).any(1)
    return float(fake_in.double().mean()), float(real_in.double().mean())


@dataclass
class FeatureSet:
    """What one image set contributes to the metrics: its features and/or its FID statistics.

    ``pool`` (N, D) gives FID and precision/recall, ``logits`` (N, C) the Inception Score, ``spatial``
    (N, S) sFID. ``mu``/``sigma`` (and ``mu_s``/``sigma_s``) are the Gaussian statistics; they may come from
    a file without the features (then ``stats_from_features`` is False and the exact small-set FID path is not
    used). ``meta`` records the extractor (network, weights), ``source`` where the numbers came from.
    """
    num_images: int
    meta: Dict[str, str] = field(default_factory=dict)
    source: str = 'images'
    mu: Optional[np.ndarray] = None
    sigma: Optional[np.ndarray] = None
    mu_s: Optional[np.ndarray] = None
    sigma_s: Optional[np.ndarray] = None
    pool: Optional[np.ndarray] = None
    logits: Optional[np.ndarray] = None
    spatial: Optional[np.ndarray] = None
    stats_from_features: bool = False

    @classmethod
    def from_features(cls, features: Dict[str, np.ndarray], meta: Optional[Dict[str, str]] = None,
                      source: str = 'images') -> 'FeatureSet':
        """Statistics of ``features`` (an extractor's output: pool, optional logits and spatial)."""
        pool = features['pool']
        mu, sigma = feature_statistics(pool)
        out = cls(num_images=len(pool), meta=dict(meta or {}), source=source, mu=mu, sigma=sigma, pool=pool,
                  logits=features.get('logits'), spatial=features.get('spatial'), stats_from_features=True)
        if out.spatial is not None:
            out.mu_s, out.sigma_s = feature_statistics(out.spatial)
        return out
