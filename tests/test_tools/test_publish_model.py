"""tools/model_converters/publish_model.py: hub-ready cards (YAML front matter, only metrics in the metrics
table, no local paths), the same bytes when published twice, and --push-to-hub up to the upload call (this
machine reaches no hub: the HfApi calls are recorded, not sent)."""
import json
import os.path as osp

import pytest
from cli import run_cli
from tiny_models import GENERATOR_CONFIG, REPO_ROOT, generator, tokenizer_checkpoint


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    work = tmp_path_factory.mktemp('publish')
    tok = tokenizer_checkpoint(work)
    _, gen = generator(work, tok, seed=1)
    metrics = work / 'metrics.json'
    metrics.write_text(json.dumps(dict(sampling=dict(accuracy=0.975, seconds=12.5, step=3000, seed=0),
                                       tokenizer=dict(psnr=18.67, iter_time=0.07))))
    return dict(work=work, tok=tok, gen=gen, metrics=str(metrics))


def _publish(checkpoints, out, *extra):
    run_cli('tools/model_converters/publish_model.py', [
        osp.join(REPO_ROOT, GENERATOR_CONFIG), checkpoints['gen'], out, '--metrics', checkpoints['metrics'],
        '--cfg-options', f'model.tokenizer_checkpoint={checkpoints["tok"]}', *extra])


def test_cards_are_hub_ready_and_bytes_repeat(checkpoints):
    from mmspectral.fileio import sha256_of_file
    a, b = (str(checkpoints['work'] / run / 'tiny') for run in ('first', 'second'))  # one name, twice
    _publish(checkpoints, a)
    _publish(checkpoints, b)
    for name in ('config.json', 'model.safetensors', 'README.md'):
        assert sha256_of_file(osp.join(a, name)) == sha256_of_file(osp.join(b, name)), name
    card = open(osp.join(a, 'README.md')).read()
    front = card.split('---\n')[1]
    assert 'library_name: mmspectral' in front and 'license: apache-2.0' in front
    assert 'pipeline_tag: unconditional-image-generation' in front and '- spectralar' in front
    measured = card.split('## Measured')[1].split('##')[0]
    assert 'sampling/accuracy' in measured and 'tokenizer/psnr' in measured
    for number in ('seconds', 'sampling/step', 'seed', 'iter_time'):
        assert number not in measured, number
    assert 'sampling/seconds 12.5' in card  # under 'Data and training'
    assert 'data_root' not in card and str(checkpoints['work']) not in card


def test_push_to_hub_creates_and_uploads(checkpoints, monkeypatch):
    huggingface_hub = pytest.importorskip('huggingface_hub')
    calls = []

    class RecordingApi:
        def __init__(self, **kwargs):
            calls.append(('init', kwargs))

        def create_repo(self, repo_id, **kwargs):
            calls.append(('create_repo', repo_id, kwargs))
            return f'https://huggingface.co/{repo_id}'

        def upload_folder(self, **kwargs):
            calls.append(('upload_folder', kwargs))

    monkeypatch.setattr(huggingface_hub, 'HfApi', RecordingApi)
    out = str(checkpoints['work'] / 'pushed')
    _publish(checkpoints, out, '--push-to-hub', 'org/tiny', '--private')
    assert calls[1] == ('create_repo', 'org/tiny', dict(repo_type='model', private=True, exist_ok=True))
    upload = calls[2][1]
    assert upload['repo_id'] == 'org/tiny' and upload['folder_path'] == out and upload['repo_type'] == 'model'
