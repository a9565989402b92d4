import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from mmspectral.evaluation import ReconstructionMetric, psnr, ssim


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM with scipy's Gaussian filter (sigma 1.5, radius 5 = an 11x11 window), valid region, mean over
    channels."""
    c1, c2, out = 0.01 ** 2, 0.03 ** 2, []
    for ch in range(x.shape[0]):
        f = lambda a: gaussian_filter(a, 1.5, truncate=5 / 1.5, mode='constant')[5:-5, 5:-5]  # noqa: E731
        a, b = x[ch].astype(np.float64), y[ch].astype(np.float64)
        mx, my = f(a), f(b)
        vx, vy, cxy = f(a * a) - mx ** 2, f(b * b) - my ** 2, f(a * b) - mx * my
        out.append(np.mean(((2 * mx * my + c1) * (2 * cxy + c2))
                           / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))))
    return float(np.mean(out))


def test_psnr_and_ssim():
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    noisy = (x + 0.1).clamp(0, 1)
    assert torch.allclose(psnr(x, x + 0.1), torch.full((2,), 20.0), atol=1e-4)  # MSE 0.01 -> 20 dB
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)
    for b in range(2):
        assert ssim(x[b:b + 1], noisy[b:b + 1]).item() == pytest.approx(
            reference_ssim(x[b].numpy(), noisy[b].numpy()), abs=1e-5)
    assert (ssim(x, (x + 0.3 * torch.randn_like(x)).clamp(0, 1)) < ssim(x, noisy)).all()


def sample(image, recons, targets, tokens):
    return dict(image=image, recons=recons, targets=targets, tokens=tokens)


def test_metric_per_prefix_and_codebook_usage():
    torch.manual_seed(0)
    metric = ReconstructionMetric(codebook_size=8, quantize_8bit=False)
    image = torch.rand(3, 16, 16)
    target1 = torch.full_like(image, 0.5)
    samples = []
    for tokens in (torch.tensor([0, 1, 1, 1]), torch.tensor([2, 2, 2, 2])):
        samples.append(sample(image, {1: target1 + 0.1, 4: image.clone()}, {1: target1, 4: image}, tokens))
    metric.process(None, samples)
    result = metric.compute_metrics(metric.results)
    assert result['psnr_lowpass/k1'] == pytest.approx(20.0, abs=1e-3)
    assert result['psnr_full/k4'] == result['psnr'] and result['psnr'] > 90  # exact reconstruction
    assert result['ssim_lowpass/k4'] == pytest.approx(1.0)
    assert result['psnr_full/k1'] < result['psnr_full/k4']
    assert result['codebook_usage'] == pytest.approx(3 / 8)
    probs = np.array([1, 3, 4]) / 8
    assert result['codebook_perplexity'] == pytest.approx(float(np.exp(-(probs * np.log(probs)).sum())))
    # Per position (4 bins of one position): position 1 sees codes 0 and 2 (perplexity 2), the others 1 and 2.
    assert [result[f'codebook_perplexity_pos{i}-{i}'] for i in range(1, 5)] == pytest.approx([2.0] * 4)


def test_per_position_perplexity_finds_positions_that_carry_nothing():
    rng = np.random.default_rng(0)
    metric = ReconstructionMetric(codebook_size=64, quantize_8bit=False, position_bins=2)
    image = torch.rand(3, 8, 8)
    for _ in range(400):  # positions 1-4 spread over 64 codes, positions 5-8 always code 7
        tokens = torch.tensor(np.concatenate([rng.integers(0, 64, 4), np.full(4, 7)]))
        metric.process(None, [sample(image, {8: image}, {8: image}, tokens)])
    result = metric.compute_metrics(metric.results)
    assert (result['codebook_perplexity_pos1-4'] > 55
            and result['codebook_perplexity_pos5-8'] == pytest.approx(1.0))
    assert 'codebook_perplexity_pos1-1' not in result
