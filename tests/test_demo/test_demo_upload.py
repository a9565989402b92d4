"""The demo's upload loader (demo/app.py load_upload), without a browser: an upload's size is read from its
header, and one of more than MAX_UPLOAD_PIXELS is refused before it is decoded."""
import os.path as osp
import struct
import zlib

import cv2
import numpy as np
import pytest
from cli import load_cli

from mmspectral.datasets.transforms import CorruptImageError, ImageTooLargeError, loading

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def app():
    return load_cli('demo/app.py')  # imports no Gradio: build_demo does


def bilevel_png(path, width, height):
    """A valid black 1-bit PNG of any size, written a row at a time (12000 x 12000: 16 KB on disk; decoded
    to RGB it would be 432 MB)."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    pack = zlib.compressobj(9)
    row = b'\x00' * (1 + (width + 7) // 8)  # filter byte 0, then the packed pixels
    idat = b''.join(pack.compress(row) for _ in range(height)) + pack.flush()
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)) +
                chunk(b'IDAT', idat) + chunk(b'IEND', b''))


def test_the_cap_is_a_sane_named_constant(app):
    assert 20e6 <= app.MAX_UPLOAD_PIXELS <= 100e6


def test_an_upload_over_the_cap_is_refused_before_decoding(app, tmp_path, monkeypatch):
    path = str(tmp_path / 'huge.png')
    bilevel_png(path, 12000, 12000)

    def no_decoding(*args, **kwargs):
        raise AssertionError('the upload was decoded')

    monkeypatch.setattr(loading.cv2, 'imdecode', no_decoding)
    with pytest.raises(ImageTooLargeError, match=r'huge.png is 12000 x 12000 = 144.0 megapixels; at most 40 '
                                                 r'megapixels are accepted here. Resize it first'):
        app.load_upload(path)


def test_an_upload_within_the_cap_loads_as_rgb(app, tmp_path):
    path = str(tmp_path / 'small.png')
    bilevel_png(path, 640, 480)
    image = app.load_upload(path)
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8 and not image.any()
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'photo.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert np.array_equal(app.load_upload(str(tmp_path / 'photo.png')), rgb)
    with pytest.raises(ImageTooLargeError, match='20 x 30|30 x 20'):
        app.load_upload(str(tmp_path / 'photo.png'), max_pixels=100)
    (tmp_path / 'notes.txt').write_text('not an image')
    with pytest.raises(CorruptImageError, match='notes.txt: its size could not be read'):
        app.load_upload(str(tmp_path / 'notes.txt'))


def test_form_fields_are_checked_with_a_message_naming_them(app, codec_models):
    """An empty, non-numeric, fractional or out-of-range field, an unknown class or a sampling setting the
    model refuses: a ValueError naming the field (the page shows it), never a TypeError from deep inside."""
    for value, named in ((None, 'seed: enter a whole number'), ('', 'seed: enter a whole number'),
                         ('x', "'x' is not a number"), (1.5, 'not a whole number'),
                         (-1, 'not a whole number')):
        with pytest.raises(ValueError, match=named):
            app.whole_number(value, 'seed', 0)
    assert app.whole_number(7.0, 'seed', 0) == 7 and app.whole_number('3', 'tokens', 1, 16) == 3
    with pytest.raises(ValueError, match='from 1 to 16'):
        app.whole_number(17, 'tokens', 1, 16)
    with pytest.raises(ValueError, match='class: pick one'):
        app.class_label('dragon', ['disk', 'ring'])
    model = codec_models['model']
    defaults = app.sampling_defaults(model)
    assert set(defaults) == set(app.SAMPLING_KEYS) and defaults['temperature'] == 1.0
    assert app.sampling_settings(model, *(defaults[k] for k in app.SAMPLING_KEYS)) == defaults
    for change, named in ((dict(temperature=-1.0), 'temperature'), (dict(top_p=1.5), 'top_p'),
                          (dict(cfg_schedule='lin'), 'cfg_schedule'), (dict(top_k=2.5), 'top-k'),
                          (dict(cfg_scale=None), 'cfg_scale: the field is empty')):
        values = dict(defaults, **change)
        with pytest.raises(ValueError, match=named):
            app.sampling_settings(model, *(values[k] for k in app.SAMPLING_KEYS))


def test_each_example_sets_the_class_it_shows(app, codec_models):
    """Picking an EmbeddedShapes example in the page fills in its image and the class of the variations."""
    pytest.importorskip('gradio')
    from mmspectral.datasets import EMBEDDED_CLASS_SETS
    model = codec_models['model']
    classes = list(EMBEDDED_CLASS_SETS['coarse'][:model.gen.num_classes])
    names = model.class_names
    try:
        model.class_names = tuple(classes)
        demo = app.build_demo(model)
    finally:
        model.class_names = names
    dataset, = [c for c in demo.config['components'] if c.get('type') == 'dataset']
    assert dataset['props']['headers'] == ['image', 'class of the variations']
    assert [row[1] for row in dataset['props']['samples']] == classes
