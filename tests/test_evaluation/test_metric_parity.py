"""mmspectral's metrics agree with the reference implementations users compare against: PSNR and SSIM with
scikit-image's (Wang et al.'s Gaussian SSIM: 11 x 11 window, sigma 1.5, K1 0.01, K2 0.03, population
covariance, statistics over the valid region, mean over channels; PSNR over all pixels and channels, peak
1), and the FID Inception's input resize with TF1's bilinear resize as torch-fidelity implements it (the
resize the ADM evaluator's TensorFlow graph runs)."""
import pytest
import torch
import torch.nn.functional as F


@pytest.mark.parametrize('seed', range(4))
def test_psnr_and_ssim_match_scikit_image(seed):
    skimage_metrics = pytest.importorskip('skimage.metrics')
    from mmspectral.evaluation import psnr, ssim
    gen = torch.Generator().manual_seed(seed)
    size = (64, 64) if seed % 2 == 0 else (48, 80)
    target = torch.rand(2, 3, *size, generator=gen)
    noise = (0.02 + 0.1 * seed) * torch.randn(2, 3, *size, generator=gen)
    pred = (target + noise).clamp(0, 1)
    ours_ssim, ours_psnr = ssim(pred, target), psnr(pred, target)
    for i in range(2):
        a, b = target[i].permute(1, 2, 0).double().numpy(), pred[i].permute(1, 2, 0).double().numpy()
        ref = skimage_metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                                    use_sample_covariance=False, data_range=1.0,
                                                    channel_axis=2)
        assert float(ours_ssim[i]) == pytest.approx(ref, abs=2e-6)
        ref_psnr = skimage_metrics.peak_signal_noise_ratio(a, b, data_range=1.0)
        assert float(ours_psnr[i]) == pytest.approx(ref_psnr, abs=1e-4)


@pytest.mark.parametrize('shape', [(64, 64), (256, 256), (40, 48), (512, 300)])
def test_fid_resize_matches_tensorflow1_bilinear(shape):
    compat = pytest.importorskip('torch_fidelity.interpolate_compat_tensorflow')
    from mmspectral.evaluation.generative.inception import resize_bilinear_tf1
    images = torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(sum(shape))) * 255
    reference = compat.interpolate_bilinear_2d_like_tensorflow1x(images, size=(299, 299), align_corners=False)
    ours = resize_bilinear_tf1(images, 299)
    assert (ours - reference).abs().max() < 0.02  # of 255: float32 rounding in the reference
    # torch's own bilinear resize (half-pixel centres) is far from it: the difference the switch removes
    torchs = F.interpolate(images, size=(299, 299), mode='bilinear', align_corners=False)
    assert (torchs - reference).abs().mean() > 1.0


def test_inception_input_mappings():
    from mmspectral.evaluation.generative import FIDInceptionV3
    tf1 = FIDInceptionV3(allow_random_init=True, seed=0)
    old = FIDInceptionV3(allow_random_init=True, seed=0, input_mapping='torch')
    images = torch.rand(1, 3, 299, 299)
    # at 299 px both resizes are the identity, and (255 x - 128) / 128 = 2 x' - 1 for x' = 255 x / 256
    torch.testing.assert_close(tf1(images)['pool'], old(images * 255 / 256)['pool'], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(tf1(images)['pool'], old(images)['pool'], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="input_mapping must be 'tf1' or 'torch'"):
        FIDInceptionV3(allow_random_init=True, input_mapping='pil')
