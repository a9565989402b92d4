import numpy as np
import pytest
import torch

from mmspectral.datasets import (EMBEDDED_CLASS_SETS, EMBEDDED_CLASSES, EmbeddedShapesDataset, class_set_of,
                                 render_shape)
from mmspectral.datasets.embedded import _pink_field
from mmspectral.spectral import dct2


def radial_slope(img: np.ndarray) -> float:
    """Slope of log amplitude vs log frequency of a grey image's 2-D FFT (natural images: about -1)."""
    f = np.abs(np.fft.fftshift(np.fft.fft2(img - img.mean())))
    n = img.shape[0]
    yy, xx = np.mgrid[:n, :n] - n // 2
    r = np.sqrt(xx ** 2 + yy ** 2).astype(int)
    radii = np.arange(2, n // 2)
    amp = np.array([f[r == k].mean() for k in radii])
    return float(np.polyfit(np.log(radii), np.log(amp), 1)[0])


def test_images_are_deterministic_and_depend_on_seed():
    a = render_shape(0, 5, 3, 32)
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
    assert np.array_equal(a, render_shape(0, 5, 3, 32))
    assert not np.array_equal(a, render_shape(1, 5, 3, 32))
    assert not np.array_equal(a, render_shape(0, 6, 3, 32))
    assert render_shape(0, 5, 3, 64).shape == (64, 64, 3)


def test_backgrounds_have_natural_image_spectra():
    rng = np.random.default_rng(0)
    slopes = [radial_slope(_pink_field(rng, 64, alpha)) for alpha in (0.9, 1.2, 1.5)]
    assert slopes == pytest.approx([-0.9, -1.2, -1.5], abs=0.15)
    # Whole images too: the energy is concentrated at low frequencies, as the spectral ordering assumes.
    img = torch.tensor(render_shape(0, 0, 0, 64)).permute(2, 0, 1).double() / 255
    energy = dct2(img - img.mean()).pow(2).sum(0)
    assert energy[:8, :8].sum() / energy.sum() > 0.5


def class_mean_masks(class_set: str, num: int = 20, size: int = 32) -> np.ndarray:
    """(10, size, size) share of the samples of each class whose pixel is object (saturation > background)."""
    means = []
    for label in range(10):
        masks = []
        for i in range(num):
            img = render_shape(0, i, label, size, class_set).astype(np.float32) / 255
            masks.append(img.max(-1) - img.min(-1) > 0.45)
        means.append(np.mean(masks, 0))
    return np.stack(means)


@pytest.mark.parametrize('class_set', ['fine', 'coarse'])
def test_classes_are_different_shapes(class_set):
    """The objects of different classes differ: compare class-mean object masks."""
    means = class_mean_masks(class_set).reshape(10, -1)
    dist = np.abs(means[:, None] - means[None]).mean(-1)
    off_diag = dist[~np.eye(10, dtype=bool)]
    assert off_diag.min() > 0.02


@pytest.mark.parametrize('class_set', ['fine', 'coarse'])
def test_class_sets_are_closed_under_horizontal_flips(class_set):
    """Flip augmentation keeps labels: each class's mirrored mean mask is nearest to its own mean mask (a
    mirror pair such as '/' and '\\' would be nearest to each other)."""
    means = class_mean_masks(class_set, num=40)
    mirrored = means[:, :, ::-1].reshape(10, -1)
    dist = np.abs(mirrored[:, None] - means.reshape(10, -1)[None]).mean(-1)
    assert dist.argmin(1).tolist() == list(range(10))


def test_coarse_class_set():
    fine = EmbeddedShapesDataset(num_samples=10, image_size=32, seed=3)
    coarse = EmbeddedShapesDataset(num_samples=10, image_size=32, seed=3, class_set='coarse')
    assert coarse.metainfo['classes'] == EMBEDDED_CLASS_SETS['coarse'] != fine.metainfo['classes']
    assert np.array_equal(coarse.get_data_info(4)['img'], render_shape(3, 4, 4, 32, 'coarse'))
    assert not np.array_equal(coarse.get_data_info(4)['img'], fine.get_data_info(4)['img'])
    assert class_set_of(coarse.metainfo['classes']) == 'coarse' and class_set_of(EMBEDDED_CLASSES) == 'fine'
    assert class_set_of(()) == 'fine'
    with pytest.raises(ValueError, match="class_set must be one of .'coarse', 'fine'.*'corse'"):
        EmbeddedShapesDataset(num_samples=10, class_set='corse')


def test_dataset_is_balanced_and_packs():
    ds = EmbeddedShapesDataset(num_samples=30, image_size=32, seed=3, pipeline=[dict(type='PackImageInputs')])
    labels = [ds.get_data_info(i)['gt_label'] for i in range(len(ds))]
    assert np.bincount(labels).tolist() == [3] * 10
    sample = ds[7]
    assert sample['inputs'].shape == (3, 32, 32) and sample['inputs'].dtype == torch.uint8
    assert int(sample['data_samples'].gt_label) == 7
    expected = render_shape(3, 7, 7, 32)
    assert np.array_equal(sample['inputs'].permute(1, 2, 0).numpy(), expected)
    assert ds.metainfo['classes'] == EMBEDDED_CLASSES
    assert EmbeddedShapesDataset(num_samples=8, num_classes=4).metainfo['classes'] == EMBEDDED_CLASSES[:4]
    with pytest.raises(ValueError, match='num_classes'):
        EmbeddedShapesDataset(num_classes=11)


def test_cached_images_are_the_drawn_ones_and_not_shared():
    from mmspectral.datasets import EmbeddedShapesDataset
    plain = EmbeddedShapesDataset(num_samples=4, image_size=16, seed=3)
    cached = EmbeddedShapesDataset(num_samples=4, image_size=16, seed=3, cache_images=True)
    first = cached.get_data_info(2)['img']
    assert np.array_equal(first, plain.get_data_info(2)['img'])
    first[:] = 0  # a transform writing into its input must not change the cache
    assert np.array_equal(cached.get_data_info(2)['img'], plain.get_data_info(2)['img'])
    assert len(cached._cache) == 1
