"""Sub-images for super-resolution, as the paper's section 4.4 builds them: split, up-sample, reassemble."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmspectral.spectral import band_energy_above, idct2, reassemble_subimages, split_subimages, upsample


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


@pytest.mark.parametrize('seed', range(3))
def test_sub_images_are_the_strided_or_quadrant_pixels_up_sampled(seed):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    stride = split_subimages(x, 'stride')
    patch = split_subimages(x, 'patch')
    assert stride.shape == patch.shape == (2, 4, 3, 32, 32)
    for n, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        expected = F.interpolate(x[..., i::2, j::2], size=32, mode='bicubic', align_corners=False).clamp(0, 1)
        torch.testing.assert_close(stride[:, n], expected)
        quadrant = x[..., 16 * i:16 * (i + 1), 16 * j:16 * (j + 1)]
        torch.testing.assert_close(patch[:, n], upsample(quadrant, 32))
    raw = split_subimages(x, 'stride', size=16)
    assert torch.equal(raw[:, 3], x[..., 1::2, 1::2])


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
