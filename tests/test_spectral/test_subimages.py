"""Sub-images for super-resolution, as the paper's section 4.4 builds them: split, up-sample, reassemble."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmspectral.spectral import (band_energy_above, idct2, lowpass, reassemble_subimages, split_subimages,
                                 upsample)
from mmspectral.spectral.subimages import bicubic_resample


def one_over_f(b=3, size=64, seed=0):
    """Images with a 1/f amplitude spectrum (natural-image statistics), in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.arange(size, dtype=torch.float64)
    radius = torch.sqrt(u[:, None] ** 2 + u[None, :] ** 2).clamp_min(1.0)
    coeffs = torch.randn(b, 3, size, size, generator=gen, dtype=torch.float64) / radius
    x = idct2(coeffs)
    low, high = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
    x = (x - low) / (high - low)
    return x.float()


def keys_cubic(t, a=-0.75):
    """Cubic convolution kernel (Keys 1981) with PyTorch's a = -0.75."""
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def cubic_matrix(coords, n):
    """(len(coords), n) weights of bicubic samples at ``coords`` (pixel centres at integers) of an n-pixel
    axis, taps past the border moved onto the edge pixel: a reference written out tap by tap."""
    out = torch.zeros(len(coords), n, dtype=torch.float64)
    for row, c in enumerate(coords.tolist()):
        base = math.floor(c)
        for tap in range(base - 1, base + 3):
            out[row, min(max(tap, 0), n - 1)] += keys_cubic(torch.tensor(c - tap, dtype=torch.float64))
    return out


def smooth_images(b=2, size=32, band=8, seed=0):
    """Low-pass noise (DCT band below ``band``) around 0.5, std 0.12: smooth, never clamped."""
    x = lowpass(torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64), band)
    return (0.5 + 0.12 * (x - x.mean()) / x.std()).float()


def psnr(pred, target):
    """dB per image, peak 1."""
    return -10 * torch.log10((pred - target).pow(2).flatten(1).mean(1))


def plain_grid_stride(x):
    """The half-pixel-off construction: each strided sub-image up-sampled by plain bicubic, interleaved."""
    out = torch.empty(*x.shape[:2], 2 * x.shape[-2], 2 * x.shape[-1])
    for i in (0, 1):
        for j in (0, 1):
            out[..., i::2, j::2] = upsample(x[..., i::2, j::2], x.shape[-1])
    return out


def test_bicubic_resample_is_upsample_on_the_plain_grid_and_the_reference_kernel_off_it():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    plain = (torch.arange(32, dtype=torch.float64) + 0.5) / 2 - 0.5
    expected = F.interpolate(x, size=32, mode='bicubic', align_corners=False)
    torch.testing.assert_close(bicubic_resample(x, plain, plain), expected, atol=1e-5, rtol=0)
    # Shifted and stretched grids, past both borders, against the tap-by-tap reference.
    rows, cols = plain + 0.125, torch.linspace(-1.3, 16.4, 23, dtype=torch.float64)
    reference = torch.einsum('yh,bchw,xw->bcyx', cubic_matrix(rows, 16), x.double(), cubic_matrix(cols, 16))
    torch.testing.assert_close(bicubic_resample(x, rows, cols), reference.float(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='1-D rows / cols'):
        bicubic_resample(x, plain[None], plain)


@pytest.mark.parametrize('seed', range(3))
def test_sub_images_are_the_strided_or_quadrant_pixels_up_sampled(seed):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    stride = split_subimages(x, 'stride')
    patch = split_subimages(x, 'patch')
    assert stride.shape == patch.shape == (2, 4, 3, 32, 32)
    m = torch.arange(32, dtype=torch.float64)
    for n, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        # Strided: up-sampled pixel m sits at sub-image coordinate m / 2 - 1/8 - i / 4 (rows; j for columns).
        rows, cols = cubic_matrix(m / 2 - 1 / 8 - i / 4, 16), cubic_matrix(m / 2 - 1 / 8 - j / 4, 16)
        expected = torch.einsum('yh,bchw,xw->bcyx', rows, x[..., i::2, j::2].double(), cols).clamp(0, 1)
        torch.testing.assert_close(stride[:, n], expected.float(), atol=1e-5, rtol=0)
        quadrant = x[..., 16 * i:16 * (i + 1), 16 * j:16 * (j + 1)]
        torch.testing.assert_close(patch[:, n], upsample(quadrant, 32))
    raw = split_subimages(x, 'stride', size=16)
    assert torch.equal(raw[:, 3], x[..., 1::2, 1::2])


@pytest.mark.parametrize('seed', range(3))
def test_unrefined_stride_super_resolution_is_the_bicubic_up_sampling(seed):
    """Split -> up-sample -> reassemble, with nothing generated, is close to the bicubic 2x up-sampling of the
    whole image on smooth images: each sub-image is sampled where its 2S pixels are. Sampled on the plain
    grid instead, 2S pixels 2m + 1 and 2m + 2 would show the same point (half a pixel off)."""
    x = smooth_images(seed=seed)
    target = upsample(x, 64)
    for mode in ('stride', 'patch'):
        out = reassemble_subimages(split_subimages(x, mode), mode)
        assert psnr(out, target).min() > 42  # about 44-45 dB (patch: 50 dB, its seams aside)
    off_grid = psnr(plain_grid_stride(x), target)
    assert (psnr(reassemble_subimages(split_subimages(x, 'stride'), 'stride'), target) > off_grid + 5).all()


def test_unrefined_stride_super_resolution_keeps_a_ramp_even():
    """A linear ramp stays monotone with nearly even steps. The bicubic kernel (a = -0.75) does not reproduce
    a ramp exactly: its own 2x up-sampling alternates steps of 0.81 and 1.19 of the mean, the stride result
    0.67-1.23 (the half-pixel-off grid: 2.0 and -0.375). The first and last 4 pixels are left out: there the
    strided sub-image's own border (its edge pixel repeated) is not the image's."""
    size = 32
    step = 0.8 / (size - 1) / 2  # the ramp's rise per pixel of the 2S image
    ramp = (0.1 + 0.8 * torch.arange(size, dtype=torch.float32) / (size - 1)).expand(1, 3, size, size)
    bicubic = upsample(ramp, 2 * size).diff(dim=-1)[..., 4:-4] / step
    assert bicubic.min() > 0.8 and bicubic.max() < 1.2
    for along in (-1, -2):  # a ramp along columns, then along rows
        image = ramp if along == -1 else ramp.transpose(-1, -2)
        out = reassemble_subimages(split_subimages(image, 'stride'), 'stride')  # (1, 3, 64, 64)
        steps = out.diff(dim=along).movedim(along, -1)[..., 4:-4] / step
        assert steps.min() > 0.5 and steps.max() < 1.5
        across = out.diff(dim=-3 - along)  # the other axis: constant
        assert across.abs().max() < 1e-5


@pytest.mark.parametrize('mode', ['stride', 'patch'])
@pytest.mark.parametrize('size', [8, 32, 64])
def test_reassembly_is_the_exact_inverse_of_the_split(mode, size):
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    assert torch.equal(reassemble_subimages(split_subimages(x, mode, size=size // 2), mode), x)
    # Without refinement the up-sampled sub-images land in place: sub-image n is what the split gives back.
    subs = split_subimages(x, mode)
    out = reassemble_subimages(subs, mode)
    assert out.shape == (2, 3, 2 * size, 2 * size)
    assert torch.equal(split_subimages(out, mode, size=size), subs)


def test_up_sampled_sub_images_hold_only_the_lower_half_band():
    """Each sub-image, up-sampled to S, has little energy above S / 2: the tokens past w_k = S / 2 are to be
    generated. Up-sampling the whole image first and striding the 2S result keeps nearly the full spectrum."""
    x = one_over_f()
    s = x.shape[-1]
    paper = band_energy_above(split_subimages(x, 'stride').flatten(0, 1), s // 2)
    quadrants = band_energy_above(split_subimages(x, 'patch').flatten(0, 1), s // 2)
    original = band_energy_above(x, s // 2)
    upsampled_first = upsample(x, 2 * s)[..., ::2, ::2]
    other_way = band_energy_above(upsampled_first, s // 2)
    # Per image: about 10% of the original's energy above S / 2 is left in the paper's sub-images, over 60%
    # (about 70%) the other way round.
    assert (paper.view(-1, 4).amax(1) < 0.25 * original).all()
    assert (quadrants.view(-1, 4).amax(1) < 0.25 * original).all()
    assert (other_way > 0.6 * original).all()


def test_band_energy_is_zero_below_the_cutoff_and_validates():
    x = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
    x[...] = torch.cos(math.pi * 3 * (torch.arange(16) + 0.5) / 16)  # one DCT frequency: (0, 3)
    assert band_energy_above(x, 4).item() == pytest.approx(0.0, abs=1e-6)
    assert band_energy_above(x, 3).item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match='mode'):
        split_subimages(torch.rand(1, 3, 8, 8), 'tiles')
    with pytest.raises(ValueError, match='even S'):
        split_subimages(torch.rand(1, 3, 7, 7))
    with pytest.raises(ValueError, match=r'\(B, 4, C, T, T\)'):
        reassemble_subimages(torch.rand(1, 3, 3, 8, 8))
