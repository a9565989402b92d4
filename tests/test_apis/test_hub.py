"""Loading a model folder by Hugging Face Hub id, from a snapshot laid out in a temporary cache exactly as
``huggingface_hub`` lays out what it downloads (models--org--name/refs, snapshots/<commit>); offline, so no
test touches the network."""
import shutil

import pytest
import torch
from tiny_models import generator, tokenizer_checkpoint

COMMIT = 'a' * 40


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A temporary hub cache holding 'org/tiny' (main and tag v1) and 'org/other' (not a model folder)."""
    huggingface_hub = pytest.importorskip('huggingface_hub')
    from mmspectral.apis import save_pretrained
    model, _ = generator(tmp_path, tokenizer_checkpoint(tmp_path), seed=1)
    folder = tmp_path / 'folder'
    save_pretrained(model, str(folder))
    cache = tmp_path / 'hub'
    repo = cache / 'models--org--tiny'
    shutil.copytree(folder, repo / 'snapshots' / COMMIT)
    (repo / 'refs').mkdir()
    for ref in ('main', 'v1'):
        (repo / 'refs' / ref).write_text(COMMIT)
    other = cache / 'models--org--other'
    (other / 'snapshots' / COMMIT).mkdir(parents=True)
    (other / 'snapshots' / COMMIT / 'README.md').write_text('not a model folder')
    (other / 'refs').mkdir()
    (other / 'refs' / 'main').write_text(COMMIT)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.chdir(tmp_path)  # 'org/tiny' is no local path here
    return dict(model=model, folder=str(folder))


def test_a_hub_id_loads_the_cached_snapshot_offline(hub_cache):
    from mmspectral.apis import generate, init_generator, init_tokenizer
    loaded = init_generator('org/tiny')
    mine, theirs = hub_cache['model'].state_dict(), loaded.state_dict()
    assert list(mine) == list(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert torch.equal(generate(loaded, [0, 1], seed=0), generate(hub_cache['model'], [0, 1], seed=0))
    assert torch.equal(init_generator('org/tiny', revision='v1').gen.head.weight, loaded.gen.head.weight)
    with pytest.raises(ValueError, match='holds a generator'):
        init_tokenizer('org/tiny')


def test_what_the_cache_cannot_give_is_one_clear_error(hub_cache):
    from mmspectral.apis import init_generator
    from mmspectral.apis.hub import HubModelError
    with pytest.raises(HubModelError, match='not in the Hugging Face cache.*offline mode'):
        init_generator('org/missing')
    with pytest.raises(HubModelError, match='revision v9|not in the Hugging Face cache'):
        init_generator('org/tiny', revision='v9')
    with pytest.raises(ValueError, match='not an mmspectral model folder'):
        init_generator('org/other')
    with pytest.raises(ValueError, match='pass no checkpoint'):
        init_generator('org/tiny', checkpoint=hub_cache['folder'] + '/model.safetensors')
    with pytest.raises(ValueError, match='revision.*local path'):
        init_generator(hub_cache['folder'], revision='v1')
