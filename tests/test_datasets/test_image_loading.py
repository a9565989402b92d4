"""decode_image on real encoded files: JPEGs with data after their end marker, cut JPEGs, and images that are
not 8-bit RGB (greyscale, alpha, 16-bit), whose conversion is said once per process for each kind."""
import logging
import os

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger

from mmspectral.datasets import CorruptImageError, ImageFolderDataset
from mmspectral.datasets.transforms import CONVERSIONS, converted_images, decode_image, loading, read_header

PIPELINE = [dict(type='LoadImage'), dict(type='PackImageInputs')]
JPEG_OPTIONS = {'baseline': [], 'progressive': [cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
                'restart markers': [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]}


def photo(h=48, w=64, seed=0):
    """Smooth colours and noise, so that the entropy-coded data holds FF 00 stuffing."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=2)
    return np.clip(img + rng.integers(-40, 40, img.shape), 0, 255).astype(np.uint8)


def jpeg(img, options=()):
    return cv2.imencode('.jpg', cv2.cvtColor(img, cv2.COLOR_RGB2BGR), list(options))[1].tobytes()


def with_thumbnail(data):
    """The JPEG with an EXIF-like APP1 segment holding a whole thumbnail JPEG (and so its own FF D9)."""
    thumb = jpeg(photo(8, 8, seed=1))
    app1 = b'Exif\x00\x00' + thumb
    return data[:2] + b'\xff\xe1' + (len(app1) + 2).to_bytes(2, 'big') + app1 + data[2:]


@pytest.mark.parametrize('options', JPEG_OPTIONS)
@pytest.mark.parametrize('trailing', [1024, 100 * 1024])
def test_a_jpeg_with_data_after_its_end_marker_loads(tmp_path, options, trailing):
    """A motion photo: the camera appends a video after the JPEG's EOI. The image before it is complete."""
    data = with_thumbnail(jpeg(photo(), JPEG_OPTIONS[options]))
    rng = np.random.default_rng(trailing)
    video = b'\x00\x00\x00\x18ftypmp42\xff\xd8\xff\xd9' + rng.integers(0, 256, trailing, np.uint8).tobytes()
    expected = decode_image(data)
    assert np.array_equal(decode_image(data + video, 'motion.jpg'), expected)
    for cls in ('a', 'b'):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / 'motion.jpg').write_bytes(data + video)
    assert ImageFolderDataset.check_config(dict(data_root=str(tmp_path))) == []  # not "damaged"
    ds = ImageFolderDataset(data_root=str(tmp_path), pipeline=PIPELINE, skip_corrupt=False, test_mode=True)
    assert np.array_equal(ds[0]['inputs'].permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize('options', JPEG_OPTIONS)
@pytest.mark.parametrize('thumbnail', [False, True])
@pytest.mark.parametrize('where', ['early', 'late'])
def test_a_cut_jpeg_is_refused_naming_the_file(tmp_path, options, thumbnail, where):
    """Cut inside the entropy-coded data, 100 bytes into the first scan or at 3/4 of the file: no EOI (a
    thumbnail's EOI in APP1 does not count)."""
    data = jpeg(photo(), JPEG_OPTIONS[options])
    scan = data.index(b'\xff\xda')  # the first SOS
    if thumbnail:
        data = with_thumbnail(data)
        scan += len(data) - len(jpeg(photo(), JPEG_OPTIONS[options]))
    cut = data[:scan + 100 if where == 'early' else len(data) * 3 // 4]
    with pytest.raises(CorruptImageError, match='cut.jpg: the JPEG data is truncated'):
        decode_image(cut, 'cut.jpg')
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'cut.jpg').write_bytes(cut)
    ds = ImageFolderDataset(data_root=str(tmp_path), pipeline=PIPELINE, skip_corrupt=False)
    with pytest.raises(CorruptImageError, match=r'cut\.jpg: the JPEG data is truncated'):
        ds[0]
    assert 'none of the 1 images' in ImageFolderDataset.check_config(dict(data_root=str(tmp_path)))[0]


@pytest.fixture
def fresh_notes(monkeypatch):
    """This process's conversion counts from zero, and the log records of the test."""
    monkeypatch.setattr(loading, '_converted', loading.Counter())
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_grey_alpha_and_16_bit_images_become_8_bit_rgb_said_once_per_kind(tmp_path, fresh_notes):
    rgb = photo(8, 8)
    grey = rgb[..., 0]
    rgba = np.concatenate([rgb, np.array([0, 128, 255], np.uint8)[np.arange(64) % 3].reshape(8, 8, 1)], 2)
    deep = rgb.astype(np.uint16) * 256 + 128  # 8-bit v -> 16-bit 256 v + 128, whose high byte is v
    deep[0, 0] = 65535
    folder = tmp_path / 'a'
    folder.mkdir()
    bgra, deep_bgr = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR)
    files = {'grey.png': grey, 'grey2.png': grey, 'grey.jpg': grey, 'rgba.png': bgra, 'rgba2.png': bgra,
             'deep.png': deep_bgr, 'deep.tif': deep_bgr, 'deep_grey.png': deep[..., 0],
             'rgb.png': cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)}
    for name, img in files.items():
        assert cv2.imwrite(str(folder / name), img)
    ds = ImageFolderDataset(data_root=str(tmp_path), pipeline=PIPELINE, test_mode=True)
    loaded = {}
    for _ in range(2):  # every image twice: still one note per kind
        for i in range(len(ds)):
            img = ds[i]['inputs'].permute(1, 2, 0).numpy()
            assert img.dtype == np.uint8 and img.shape == (8, 8, 3)
            loaded[os.path.basename(ds.get_data_info(i)['img_path'])] = img
    expected_rgb = rgb.copy()
    expected_rgb[0, 0] = 255  # 65535 -> 255
    assert np.array_equal(loaded['grey.png'], np.repeat(grey[..., None], 3, 2))
    assert np.abs(loaded['grey.jpg'].astype(int) - grey[..., None]).max() <= 8  # lossy, but three equal
    assert (loaded['grey.jpg'] == loaded['grey.jpg'][..., :1]).all()
    assert np.array_equal(loaded['rgba.png'], rgb)  # alpha dropped, colours as stored (not blended)
    assert np.array_equal(loaded['deep.png'], expected_rgb)
    assert np.array_equal(loaded['deep.tif'], expected_rgb)
    assert np.array_equal(loaded['deep_grey.png'], np.repeat(expected_rgb[..., :1], 3, 2))
    assert np.array_equal(loaded['rgb.png'], rgb)

    messages = [r.getMessage() for r in fresh_notes]
    for kind, what in CONVERSIONS.items():
        said = [m for m in messages if what in m]
        assert len(said) == 1, (kind, messages)
        assert f'the first {kind} image' in said[0]
    assert sum('Said once per process' in m for m in messages) == 3
    # grey: grey.png, grey2.png, grey.jpg, deep_grey.png; alpha: rgba.png, rgba2.png; 16-bit: three, all twice
    assert converted_images() == {'greyscale': 8, 'alpha': 4, '16-bit': 6}


def test_headers_of_real_files():
    assert read_header(jpeg(photo(48, 64)))[:7] == ('jpeg', 64, 48, False, False, 8, True)
    grey = cv2.imencode('.jpg', photo()[..., 0])[1].tobytes()
    assert read_header(grey).grey and read_header(grey[:len(grey) // 2]).complete is False
    assert read_header(cv2.imencode('.png', np.zeros((5, 7, 4), np.uint16))[1].tobytes())[:6] == \
        ('png', 7, 5, False, True, 16)
    assert read_header(cv2.imencode('.webp', np.zeros((5, 7, 4), np.uint8))[1].tobytes())[1:5] == \
        (7, 5, False, True)
    assert read_header(b'not an image') is None
