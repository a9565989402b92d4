"""Super-resolution against ground truth (mmspectral.evaluation.superres, tools/analysis/superres_tiny.py) on
a tiny random generator of the quick start's configs: the input is the down-sampled render, each method's
figures are measured against the render, and the tool writes its table, JSON and figure."""
import json
import os.path as osp

import pytest
import torch
from cli import run_cli

from mmspectral.models.algorithms import GeneratorModel

TOKENIZER_CONFIG = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'
GENERATOR_CONFIG = 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COARSE = ('disk', 'ring', 'hbar', 'vbar', 'hpair', 'vpair', 'plus', 'cross', 'triangle', 'quad')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A random tiny generator (depth 1, width 32) over a random tiny tokenizer, 64 px, 16 tokens, and a
    probe file that sees 128 px, trained for 2 steps."""
    from mmspectral.apis import load_config
    from mmspectral.evaluation.embedded_classifier import load_or_train_shapes_classifier
    from mmspectral.models.algorithms import TokenizerModel
    work = tmp_path_factory.mktemp('superres')
    small = dict(width=32, depth=1, num_heads=2)
    cfg = load_config(osp.join(REPO_ROOT, TOKENIZER_CONFIG))
    cfg.model.tokenizer.update(small)
    torch.manual_seed(0)
    tok = TokenizerModel(**{k: v for k, v in cfg.model.items() if k != 'type'})
    tok_ckpt = str(work / 'tokenizer.pth')
    torch.save(dict(state_dict=tok.state_dict(), meta=dict(iter=1)), tok_ckpt)
    cfg = load_config(osp.join(REPO_ROOT, GENERATOR_CONFIG))
    cfg.model.tokenizer.update(small)
    cfg.model.tokenizer_checkpoint = tok_ckpt
    cfg.model.generator.update(depth=1, width=32, num_heads=2)
    model = GeneratorModel(**{k: v for k, v in cfg.model.items() if k != 'type'}).eval()
    model.class_names = COARSE
    model.pretrained_config = cfg.model.to_dict()
    probe = str(work / 'probe_128px.pth')
    load_or_train_shapes_classifier(probe, 128, 'coarse', steps=2, num_val=10, input_size=128)
    return dict(model=model, probe=probe, work=work)


def test_methods_are_judged_against_the_render_they_came_from(tiny):
    from mmspectral.evaluation import band_psnr, psnr
    from mmspectral.evaluation.embedded_classifier import render_batch
    from mmspectral.evaluation.superres import SUPERRES_SEED, area_downsample, superres_ground_truth
    from mmspectral.spectral import upsample
    model = tiny['model']
    result = superres_ground_truth(model, tiny['probe'], per_class=1, cutoffs=[16, 64], modes=('stride',),
                                   batch_size=4)
    renders, labels = render_batch(range(10), 128, SUPERRES_SEED, class_set='coarse')
    assert result['class_set'] == 'coarse' and result['edges'] == [0, 16, 32, 64, 128]
    assert torch.equal(result['images']['render'], renders) and torch.equal(result['labels'], labels)
    # The input: the render averaged over 2 x 2 blocks, in 8 bits, shown at 128 px by pixel repetition.
    inputs = (area_downsample(renders, 64) * 255).round() / 255
    assert torch.equal(result['images']['input'][..., ::2, ::2], inputs)
    torch.testing.assert_close(inputs, renders.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2)),
                               atol=0.5 / 255 + 1e-6, rtol=0)
    rows = {row['name']: row for row in result['rows']}
    assert list(rows) == ['bicubic', 'stride w<=16', 'stride w<=64']
    assert rows['stride w<=16']['keep_tokens'] == model.super_resolution_prefix(16)
    assert rows['stride w<=64']['keep_tokens'] == 16 and rows['bicubic']['keep_tokens'] is None
    bicubic = result['images']['bicubic']
    torch.testing.assert_close(bicubic, (upsample(inputs, 128) * 255).round() / 255)
    for name, row in rows.items():
        images = result['images'][name]
        assert images.shape == (10, 3, 128, 128)
        assert row['psnr'] == pytest.approx(float(psnr(images, renders).mean()), abs=1e-4)
        assert row['bands'] == pytest.approx(band_psnr(images, renders, [0, 16, 32, 64, 128]), abs=1e-4)
        assert 0 <= row['class_accuracy'] <= 1 and row['probe_fd'] >= 0
    # Bicubic keeps its input (down-sampled again it is close to it) and adds almost nothing above the
    # input's band: its error there is the render's own energy there, which a random tokenizer's is not.
    assert rows['bicubic']['input_psnr'] > 35 > rows['stride w<=16']['input_psnr']
    assert rows['bicubic']['psnr'] > rows['stride w<=64']['psnr']
    # Same seeds, same figures.
    again = superres_ground_truth(model, tiny['probe'], per_class=1, cutoffs=[16], modes=('stride',),
                                  batch_size=4)
    assert again['rows'][1]['psnr'] == rows['stride w<=16']['psnr']


def test_bad_requests_are_refused(tiny, tmp_path, monkeypatch):
    from mmspectral.evaluation.embedded_classifier import load_or_train_shapes_classifier
    from mmspectral.evaluation.superres import superres_ground_truth
    model = tiny['model']
    with pytest.raises(ValueError, match=r'cut-offs must lie in \[1, 64\]'):
        superres_ground_truth(model, tiny['probe'], per_class=1, cutoffs=[0, 32])
    with pytest.raises(ValueError, match='per_class must be at least 1'):
        superres_ground_truth(model, tiny['probe'], per_class=0)
    with pytest.raises(ValueError, match="of the 'coarse' EmbeddedShapes classes, not the 'fine'"):
        superres_ground_truth(model, tiny['probe'], per_class=1, class_set='fine')
    monkeypatch.setattr(model.gen, 'num_classes', 5)
    with pytest.raises(ValueError, match="the 10 EmbeddedShapes 'coarse' classes; the generator has 5"):
        superres_ground_truth(model, tiny['probe'], per_class=1)
    monkeypatch.undo()
    small = str(tmp_path / 'probe_32in.pth')
    load_or_train_shapes_classifier(small, 128, 'coarse', steps=1, num_val=2)
    with pytest.raises(ValueError, match='sees 32 px, not 128 px'):
        superres_ground_truth(model, small, per_class=1)


def test_tool_writes_table_json_and_figure(tiny):
    from PIL import Image

    from mmspectral.apis import save_pretrained
    folder = str(tiny['work'] / 'models' / 'generator')
    save_pretrained(tiny['model'], folder)
    out = tiny['work'] / 'out'
    summary = run_cli('tools/analysis/superres_tiny.py', [
        '--quickstart-dir', str(tiny['work']), '--work-dir', str(out), '--per-class', '1', '--cutoffs', '32',
        '--probe', tiny['probe'], '--batch-size', '5', '--examples', '3'])
    assert summary['generator'] == folder and summary['commit']
    with open(out / 'superres.json') as f:
        saved = json.load(f)
    assert [r['name'] for r in saved['rows']] == ['bicubic', 'stride w<=32', 'patch w<=32']
    table = (out / 'superres.md').read_text()
    assert 'PSNR w64-128 (dB)' in table and '| patch w<=32 | 13 (w <= 32) |' in table
    assert Image.open(out / 'superres.png').size == (5 * 132, 3 * 132)  # render, input, 3 methods
    with pytest.raises(SystemExit, match='run bash tools/quickstart.sh first'):
        run_cli('tools/analysis/superres_tiny.py',
                ['--quickstart-dir', tiny['work'] / 'absent', '--work-dir', out])
