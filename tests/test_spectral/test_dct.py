import numpy as np
import pytest
import scipy.fft as sfft
import torch

from mmspectral.spectral import axis_cutoffs, dct2, dct_matrix, idct2, lowpass


def reference_lowpass(x: np.ndarray, keep_h: int, keep_w: int) -> np.ndarray:
    """Independent low-pass: scipy's orthonormal DCT, zero outside the top-left block, inverse."""
    d = sfft.dctn(x, axes=(-2, -1), norm='ortho')
    d[..., keep_h:, :] = 0
    d[..., :, keep_w:] = 0
    return sfft.idctn(d, axes=(-2, -1), norm='ortho')


@pytest.mark.parametrize('shape', [(8, 8), (3, 17, 23), (2, 3, 32, 32), (1, 1, 5, 64), (1, 1)])
def test_dct2_matches_scipy_float32(shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    ours = dct2(x)
    ref = sfft.dctn(x.double().numpy(), axes=(-2, -1), norm='ortho')
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5, rtol=0)
    ref_inv = sfft.idctn(x.double().numpy(), axes=(-2, -1), norm='ortho')
    np.testing.assert_allclose(idct2(x).numpy(), ref_inv, atol=1e-5, rtol=0)


def test_dct2_inverts_exactly():
    x32 = torch.rand(2, 3, 31, 40)
    assert torch.allclose(idct2(dct2(x32)), x32, atol=1e-5)
    x64 = x32.double()
    assert torch.allclose(idct2(dct2(x64)), x64, atol=1e-12)
    assert torch.allclose(dct2(idct2(x64)), x64, atol=1e-12)


def test_dct_matrix_is_orthonormal_and_cached():
    c = dct_matrix(37, torch.float64)
    assert torch.allclose(c @ c.T, torch.eye(37, dtype=torch.float64), atol=1e-12)
    assert dct_matrix(37, torch.float64) is c
    assert dct_matrix(37, torch.float32) is not c


def test_dct_basis_is_the_papers_eq2():
    # The image g_{u,v} of eq. 2 transforms to a unit impulse at (u, v).
    h, w, u, v = 12, 10, 3, 7
    y = torch.arange(h, dtype=torch.float64)[:, None]
    x = torch.arange(w, dtype=torch.float64)[None, :]
    cu = 1 / np.sqrt(2) if u == 0 else 1.0
    cv = 1 / np.sqrt(2) if v == 0 else 1.0
    g = 2 * cu * cv / np.sqrt(h * w) * torch.cos((2 * y + 1) * u * np.pi / (2 * h)) * torch.cos(
        (2 * x + 1) * v * np.pi / (2 * w))
    expected = torch.zeros(h, w, dtype=torch.float64)
    expected[u, v] = 1
    assert torch.allclose(dct2(g), expected, atol=1e-12)


def test_dct_is_differentiable():
    x = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dct2, (x,))
    assert torch.autograd.gradcheck(lambda t: lowpass(t, torch.tensor([2, 4])), (x,))


def test_half_precision_keeps_dtype():
    x = torch.randn(2, 3, 16, 16)
    for dtype in (torch.bfloat16, torch.float16):
        out = dct2(x.to(dtype))
        assert out.dtype == dtype
        assert torch.allclose(out.float(), dct2(x.to(dtype).float()), atol=5e-2)
        assert lowpass(x.to(dtype), 4).dtype == dtype
    with pytest.raises(TypeError, match='floating-point'):
        dct2(torch.zeros(4, 4, dtype=torch.uint8))


@pytest.mark.parametrize('omega', [0, 1, 5, 16, 32])
def test_lowpass_matches_reference(omega):
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    np.testing.assert_allclose(lowpass(x, omega).numpy(), reference_lowpass(x.numpy(), omega, omega),
                               atol=1e-10)


def test_lowpass_per_sample_is_one_pass_of_the_single_results():
    x = torch.randn(4, 3, 24, 24)
    omegas = torch.tensor([1, 3, 12, 24])
    batched = lowpass(x, omegas)
    for b in range(4):
        single = lowpass(x[b:b + 1], int(omegas[b]))
        assert torch.allclose(batched[b:b + 1], single, atol=1e-5)
        ref = reference_lowpass(x[b].double().numpy(), int(omegas[b]), int(omegas[b]))
        np.testing.assert_allclose(batched[b].numpy(), ref, atol=1e-5)


def test_lowpass_identities():
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    assert torch.allclose(lowpass(x, 16), x, atol=1e-12)
    assert torch.allclose(lowpass(x, 0), torch.zeros_like(x))
    once = lowpass(x, 6)
    assert torch.allclose(lowpass(once, 6), once, atol=1e-12)  # a projection
    assert torch.allclose(lowpass(lowpass(x, 10), 4), lowpass(x, 4), atol=1e-12)  # nested bands
    # DC only: every pixel equals the channel mean.
    assert torch.allclose(lowpass(x, 1), x.mean(dim=(-2, -1), keepdim=True).expand_as(x), atol=1e-12)


def test_lowpass_non_square_scales_per_axis():
    x = torch.randn(2, 3, 32, 64, dtype=torch.float64)
    keep_h, keep_w = axis_cutoffs(8, 32, 64)
    assert (int(keep_h), int(keep_w)) == (8, 16)
    np.testing.assert_allclose(lowpass(x, 8).numpy(), reference_lowpass(x.numpy(), 8, 16), atol=1e-10)
    # The shorter side is the reference: omega = 32 keeps everything.
    assert torch.allclose(lowpass(x, 32), x, atol=1e-10)
    # An explicit reference size: omega counts frequencies of a 64-pixel side.
    np.testing.assert_allclose(lowpass(x, 16, size=64).numpy(), reference_lowpass(x.numpy(), 8, 16),
                               atol=1e-10)
    per_sample = lowpass(x, torch.tensor([4, 8]))
    np.testing.assert_allclose(per_sample[0].numpy(), reference_lowpass(x[0].numpy(), 4, 8), atol=1e-10)


def test_lowpass_rejects_bad_omega():
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match='per-sample omega of length 3'):
        lowpass(x, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match='integers'):
        lowpass(x, torch.tensor([1.5, 2.0]))
    with pytest.raises(ValueError, match='>= 0'):
        lowpass(x, -1)
