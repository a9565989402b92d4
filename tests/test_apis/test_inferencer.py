"""SpectralInferencer: batches that reproduce the one-call API with the documented seeds, files that hold
what is returned, image paths as inputs, and the module's docstring example."""
import doctest

import cv2
import numpy as np
import pytest
from tiny_models import generator, shapes, tokenizer_checkpoint


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    work = tmp_path_factory.mktemp('inferencer')
    return generator(work, tokenizer_checkpoint(work), seed=1)[0]


def _read(path):
    return cv2.imread(str(path))[..., ::-1]


def test_generate_in_batches_is_the_api_with_one_seed_per_batch(model, tmp_path):
    from mmspectral.apis import SpectralInferencer, generate
    inferencer = SpectralInferencer(model, batch_size=2, show_progress=False)
    classes = ['disk', 'ring', 'plus', 0, 9]
    arrays = inferencer.generate(classes, seed=3, out_dir=str(tmp_path))
    expected = np.concatenate([generate(model, classes[a:a + 2], seed=3 + j, output='numpy')
                               for j, a in enumerate(range(0, 5, 2))])
    assert np.array_equal(arrays, expected) and arrays.shape == (5, 64, 64, 3)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ['00000_disk.png', '00001_ring.png', '00002_plus.png', '00003_disk.png', '00004_quad.png']
    for i, name in enumerate(names):
        assert np.array_equal(_read(tmp_path / name), arrays[i])


def test_reconstruct_variations_and_super_resolution(model, tmp_path):
    from mmspectral.apis import SpectralInferencer, from_batch, reconstruct
    images, labels = shapes(3)
    arrays = from_batch(images, 'numpy')
    paths = []
    for i, a in enumerate(arrays):
        paths.append(str(tmp_path / f'in{i}.png'))
        cv2.imwrite(paths[-1], cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
    inferencer = SpectralInferencer(model, batch_size=2, show_progress=False)
    recon = inferencer.reconstruct(paths, k=[2, 16], out_dir=str(tmp_path / 'recon'))
    assert np.array_equal(recon[2], reconstruct(model, arrays, k=2, output='numpy'))
    assert np.array_equal(_read(tmp_path / 'recon' / '00001_k16.png'), recon[16][1])
    varied = inferencer.variations(arrays, labels.tolist(), keep=4, num=2, seed=0)
    assert varied.shape == (3, 2, 64, 64, 3)
    bigger = inferencer.super_resolve(paths, 'disk', mode='bicubic')
    assert bigger.shape == (3, 128, 128, 3)
    with pytest.raises(ValueError, match='one per image'):
        inferencer.variations(arrays, [0, 1], keep=4)
    with pytest.raises(ValueError, match='batch_size'):
        SpectralInferencer(model, batch_size=0)


def test_docstring_example(model, tmp_path):
    import mmspectral.apis.inferencer as module
    from mmspectral.apis import save_pretrained
    folder = str(tmp_path / 'generator')
    save_pretrained(model, folder)  # the inferencer loads it by path (get_model)
    result = doctest.testmod(module, extraglobs=dict(generator_folder=folder))
    assert result.attempted == 2 and result.failed == 0
