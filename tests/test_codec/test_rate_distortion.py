"""The rate-distortion harness: classic codecs counted in real bytes, the spectral codec's curve read from the
files a user would get, BD-rate only where curves share a quality range, and the command line."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

pytest.importorskip('constriction')
pytest.importorskip('imagecodecs')
pytest.importorskip('bjontegaard')

from cli import run_cli  # noqa: E402
from tiny_models import REPO_ROOT, TOKENIZER_CONFIG, shapes  # noqa: E402


def test_classic_curve_counts_real_files():
    import imagecodecs

    from mmspectral.analysis.rate_distortion import classic_curve, to_uint8
    images, _ = shapes(3)
    points = classic_curve('JPEG', images, settings=(10, 50, 90))
    arrays = to_uint8(images)
    for p in points:
        sizes = [len(imagecodecs.jpeg8_encode(a, level=p['setting'])) for a in arrays]
        assert p['bpp_file'] == pytest.approx(np.mean(sizes) * 8 / (64 * 64))
        assert 0 <= p['bpp_payload'] < p['bpp_file']
    assert [p['psnr'] for p in points] == sorted(p['psnr'] for p in points)  # more bytes, less error


@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_classic_codecs_take_either_memory_layout(layout):
    """Images as a (B, 3, H, W) array loaded from disk (contiguous) or as a decoder returns them (channels
    last): every codec gets the same bytes."""
    from mmspectral.analysis.rate_distortion import CLASSIC_CODECS, classic_curve
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)) / 255
    if layout == 'channels_last':
        images = images.contiguous(memory_format=torch.channels_last)
    for name, (_, settings, _) in CLASSIC_CODECS.items():
        point, = classic_curve(name, images, settings=settings[-1:])
        assert point['bpp_file'] > 0 and point['psnr'] > 10


def test_spectral_curve_reads_the_files_it_would_write(codec_models):
    from mmspectral.analysis.rate_distortion import spectral_curve
    from mmspectral.apis import compress
    model = codec_models['model']
    images, labels = shapes(3, seed=4)
    points = spectral_curve(model, images, labels)
    assert [p['setting'] for p in points] == list(range(1, 17))
    for k in (4, 16):  # the file of k tokens, as compress writes it
        sizes = [len(d) for d in compress(model, images, labels.tolist(), num_tokens=k)]
        assert points[k - 1]['bpp_file'] == pytest.approx(np.mean(sizes) * 8 / (64 * 64))
    for p in points:
        assert p['bpp_raw'] == pytest.approx(p['setting'] * 9 / 4096)  # 512 codes: 9 bits a token
        assert p['bpp_ideal'] <= p['bpp_payload'] + 32 / 4096 + 1e-9 <= p['bpp_file'] + 32 / 4096 + 1e-9
    rates = [p['bpp_file'] for p in points]
    assert rates == sorted(rates)


def test_bd_rate_needs_a_common_quality_range():
    from mmspectral.analysis.rate_distortion import bd_rates

    def curve(name, rates, psnrs):
        return [dict(codec=name, setting=i, bpp_file=r, psnr=q) for i, (r, q) in enumerate(zip(rates, psnrs))]

    anchor = curve('JPEG', [0.5, 1, 2, 4], [25, 28, 31, 34])
    half = curve('half', [0.25, 0.5, 1, 2], [25, 28, 31, 34])  # the same quality at half the rate
    apart = curve('apart', [0.01, 0.02], [15, 16])
    out = bd_rates(dict(JPEG=anchor, half=half, apart=apart))
    assert out['half']['bd_rate'] == pytest.approx(-50, abs=0.5)
    assert out['apart']['bd_rate'] is None and 'no common psnr range' in out['apart']['reason']


def test_command_line_writes_table_json_and_plot(codec_models, tmp_path, capsys):
    from mmspectral.apis import save_pretrained
    folder = str(tmp_path / 'generator')
    save_pretrained(codec_models['model'], folder)
    out = tmp_path / 'rd'
    run_cli('tools/analysis/rate_distortion.py', [folder, '--out-dir', out, '--num-images', 4,
                                                  '--codecs', 'JPEG', 'WebP', '--photos'])
    report = json.loads((out / 'rate_distortion.json').read_text())
    assert set(report['curves']) == {'generator', 'JPEG', 'WebP'}
    assert len(report['curves']['generator']) == 16 and 'WebP' in report['bd_rate']
    assert (out / 'rate_distortion.png').stat().st_size > 0 and (out / 'photos.md').is_file()
    assert '| generator | 16 |' in (out / 'rate_distortion.md').read_text()
    assert osp.isfile(out / 'photos.json')
    with pytest.raises(SystemExit):
        run_cli('tools/analysis/rate_distortion.py', ['--out-dir', out])  # neither a model nor --photos


def _table4_work_dir(tmp_path):
    """A finished table4_gap.py work dir of one tokenizer seed in the older layout (the value range set on
    the data preprocessor), random weights; returns each row's expected ideal bits and 8-token quality."""
    from mmspectral.analysis.rate_distortion import TABLE4_ROWS, _quality
    from mmspectral.apis import load_config
    from mmspectral.registry import MODELS

    cfg = load_config(osp.join(REPO_ROOT, TOKENIZER_CONFIG))
    cfg.model.tokenizer.pop('value_range')  # the older layout: the range on the data preprocessor
    cfg.model.data_preprocessor = dict(type='ImageDataPreprocessor', value_range=(-1.0, 1.0))
    images, _ = shapes(6, seed=3)
    uint8 = (images * 255).round().to(torch.uint8)
    np.savez(tmp_path / 'images.npz', held_out=uint8.numpy())
    rng = np.random.default_rng(0)
    expected = {}
    for i, row in enumerate(TABLE4_ROWS):
        run = tmp_path / row.replace('_matched', '') / 'seed0'
        (run / 'tokenizer').mkdir(parents=True, exist_ok=True)
        cfg.dump(str(run / 'tokenizer' / 'tokenizer.py'))
        torch.manual_seed(i)
        with pytest.warns(DeprecationWarning):
            model = MODELS.build(cfg.model)
        # the matched TiTok is an earlier checkpoint of the TiTok run, which ends at the later one
        step = 10 - i
        checkpoint = str(run / 'tokenizer' / f'iter_{step}.pth')
        torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=step)), checkpoint)
        folder = tmp_path / row / 'seed0'
        folder.mkdir(parents=True, exist_ok=True)
        if row.endswith('_matched'):
            (folder / 'match.json').write_text(json.dumps(dict(checkpoint=checkpoint)))
        ids = model.tok.eval().encode_images(uint8.float() / 255)
        np.savez(folder / 'tokens.npz', held_ids=ids.numpy())
        ce = rng.uniform(0.5, 3.0, 16)
        (folder / 'reference.json').write_text(json.dumps(dict(ce=ce.tolist())))
        # the model as training built it (the range settled from the data preprocessor): the reference
        expected[TABLE4_ROWS[row]] = (np.cumsum(ce) / np.log(2) / 64 ** 2,
                                      _quality(model.tok.decode_images(ids[:, :8]), uint8.float() / 255))
    return expected


def test_table4_rows_read_a_finished_work_dir(tmp_path):
    """The ideal rate of each Table 4 row is its reference generator's held-out cross-entropy summed over
    the prefix, and its PSNR is the row's tokenizer decoding the held-out tokens with the value range its
    run trained in, also for a run whose config set that range on the data preprocessor (older runs)."""
    from mmspectral.analysis.rate_distortion import TABLE4_ROWS, table4_ideal_curves
    expected = _table4_work_dir(tmp_path)
    curves = table4_ideal_curves(str(tmp_path), seeds=(0,))
    assert set(curves) == set(TABLE4_ROWS.values())
    for label, points in curves.items():
        bits, quality = expected[label]
        assert [p['setting'] for p in points] == list(range(1, 17))
        assert [p['bpp_ideal'] for p in points] == pytest.approx(bits)
        assert points[7]['psnr'] == pytest.approx(quality['psnr'], abs=1e-4)


def test_table4_rows_command_line(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    _table4_work_dir(work)
    out = tmp_path / 'out'
    from mmspectral.analysis import rate_distortion
    run_cli('tools/analysis/rate_distortion.py', ['--out-dir', out, '--table4-work-dir', work,
                                                  '--table4-seeds', 0, '--codecs', 'JPEG'])
    report = json.loads((out / 'table4_rows.json').read_text())
    assert set(report['curves']) == set(rate_distortion.TABLE4_ROWS.values()) | {'JPEG'}
    assert report['bd_rate']['rate'] == 'bpp_ideal' and (out / 'table4_rows.png').stat().st_size > 0
