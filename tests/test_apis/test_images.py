"""The inference API's image conversion: every accepted kind gives [0, 1] floats; other dtypes are named."""
import numpy as np
import pytest
import torch

from mmspectral.apis.images import to_batch


@pytest.mark.parametrize('seed', range(3))
def test_uint8_array_tensor_and_float_agree(seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    as_array, kind, single = to_batch(image)
    as_tensor, _, _ = to_batch(torch.from_numpy(image).permute(2, 0, 1))
    as_float, _, _ = to_batch(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    assert kind == 'numpy' and single and as_array.shape == (1, 3, 8, 8)
    torch.testing.assert_close(as_array, as_tensor)
    torch.testing.assert_close(as_array, as_float)


@pytest.mark.parametrize('dtype', [np.int64, np.uint16, np.int32])
def test_integer_images_other_than_uint8_are_named(dtype):
    image = np.full((8, 8, 3), 200, dtype=dtype)
    with pytest.raises(TypeError, match='uint8 .* or float in \\[0, 1\\], got torch.(int64|uint16|int32)'):
        to_batch(image)


def test_float_images_outside_the_unit_range_are_refused():
    with pytest.raises(ValueError, match='must lie in \\[0, 1\\]'):
        to_batch(torch.full((3, 8, 8), 2.0))
