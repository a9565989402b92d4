"""A model folder is data: loading one runs none of its code, follows none of its paths, and builds nothing
before its declared architecture has been compared with its weights' shapes.

The hostile folders here are made as an attacker would: a folder saved by ``save_pretrained``, with
``config.json`` (and other files) changed and the hashes in ``mmspectral_model.json`` recomputed, so that each
check is shown to hold on its own and not only because the hashes no longer match."""
import copy
import json
import os
import os.path as osp
import warnings

import pytest
import torch
from cli import load_cli

TOKENIZER_CONFIG = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'
GENERATOR_CONFIG = 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def models():
    """A tiny tokenizer and generator with random weights, and their configs."""
    from mmspectral.apis import load_config
    from mmspectral.registry import MODELS
    torch.manual_seed(0)
    tok_cfg = load_config(osp.join(REPO_ROOT, TOKENIZER_CONFIG)).model
    gen_cfg = load_config(osp.join(REPO_ROOT, GENERATOR_CONFIG)).model
    gen_cfg.tokenizer_checkpoint = None
    return dict(tokenizer=(MODELS.build(tok_cfg), tok_cfg), generator=(MODELS.build(gen_cfg), gen_cfg))


@pytest.fixture
def folder(models, tmp_path):
    """A fresh tokenizer folder (the generator's with ``folder('generator')``)."""
    from mmspectral.apis import save_pretrained

    def make(kind='tokenizer'):
        model, cfg = models[kind]
        path = str(tmp_path / kind)
        save_pretrained(model, path, config=cfg)
        return path
    return make


def forge(folder, config=None, files=None):
    """Change a folder's files and record their new hashes in ``mmspectral_model.json``, as a hostile folder
    would (only ``mmspectral_model.json`` itself is not hashed)."""
    from mmspectral.fileio import sha256_of_file
    if config is not None:
        with open(osp.join(folder, 'config.json'), 'w') as f:
            json.dump(config, f)
    for name, text in (files or {}).items():
        with open(osp.join(folder, name), 'w') as f:
            f.write(text)
    meta_path = osp.join(folder, 'mmspectral_model.json')
    meta = json.load(open(meta_path))
    meta['files_sha256'] = {name: sha256_of_file(osp.join(folder, name)) for name in os.listdir(folder)
                            if name != 'mmspectral_model.json' and osp.isfile(osp.join(folder, name))}
    meta['weights_sha256'] = meta['files_sha256']['model.safetensors']
    json.dump(meta, open(meta_path, 'w'))


def config_of(folder):
    return json.load(open(osp.join(folder, 'config.json')))


def demo_loader():
    return load_cli('demo/app.py').load_models


@pytest.fixture
def built_only_on_meta(monkeypatch):
    """Fail if a model is built anywhere but on the meta device (where nothing is allocated)."""
    from mmspectral.registry import MODELS
    real, calls = MODELS.build, []

    def guarded(cfg, *args, **kwargs):
        device = torch.empty(0).device.type
        calls.append(device)
        assert device == 'meta', 'the model was built for real before its config was checked'
        return real(cfg, *args, **kwargs)
    monkeypatch.setattr(MODELS, 'build', guarded)
    return calls


def test_base_file_in_the_folder_is_never_run(folder, tmp_path):
    from mmspectral.apis import from_pretrained, init_generator, init_tokenizer
    marker = tmp_path / 'ran.txt'
    code = f'open({str(marker)!r}, "w").write("the folder ran code")\n'
    tok, gen = folder('tokenizer'), folder('generator')
    for path in (tok, gen):
        forge(path, dict(config_of(path), _base_=['extra.py']), files={'extra.py': code})
    models_dir = tmp_path  # holds tokenizer/ and generator/, as the demo's --models folder
    for load in (lambda: from_pretrained(tok), lambda: init_tokenizer(tok), lambda: init_generator(gen),
                 lambda: demo_loader()(str(models_dir))):
        with pytest.raises(ValueError, match=r"the key '_base_' \(at _base_\) is MMEngine config machinery"):
            load()
        assert not marker.exists()


def test_custom_imports_are_refused_not_imported(folder, tmp_path, monkeypatch):
    from mmspectral.apis import init_tokenizer
    marker = tmp_path / 'imported.txt'
    (tmp_path / 'folder_payload.py').write_text(f'open({str(marker)!r}, "w").write("imported")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    path = folder()
    original, nested = config_of(path), config_of(path)
    nested['tokenizer']['custom_imports'] = dict(imports=['folder_payload'])
    for cfg in (dict(config_of(path), custom_imports=dict(imports=['folder_payload'])), nested):
        forge(path, cfg)
        with pytest.raises(ValueError, match="'custom_imports'.*plain data, read with json"):
            init_tokenizer(path)
        assert not marker.exists()
    for key, value in (('_scope_', 'folder_payload'), ('_delete_', True)):
        cfg = copy.deepcopy(original)
        cfg['tokenizer'][key] = value
        forge(path, cfg)
        with pytest.raises(ValueError, match=rf"the key '{key}' \(at tokenizer.{key}\) is MMEngine config"):
            init_tokenizer(path)
        assert not marker.exists()


def test_substitutions_are_refused_not_expanded(folder):
    from mmspectral.apis import from_pretrained
    path = folder('generator')
    for cfg in (dict(config_of(path), sampling=dict(cfg_schedule='{{$HOME}}')),
                dict(config_of(path), sampling={'{{ fileDirname }}': 1})):
        forge(path, cfg)
        with pytest.raises(ValueError, match='an MMEngine substitution'):
            from_pretrained(path)


def test_unregistered_and_dotted_types_are_refused(folder):
    from mmspectral.apis import from_pretrained
    path = folder()
    for bad in ('VectorQuantiser', 'os.system', 'mmdet.VectorQuantizer', 7):
        cfg = config_of(path)
        cfg['tokenizer']['quantizer']['type'] = bad
        forge(path, cfg)
        with pytest.raises(ValueError, match=r"is not a component registered in mmspectral's model"):
            from_pretrained(path)
    cfg['tokenizer']['quantizer']['type'] = 'VectorQuantiser'
    forge(path, cfg)
    with pytest.raises(ValueError, match="did you mean 'VectorQuantizer'"):
        from_pretrained(path)


def test_external_paths_and_extra_keys_are_refused(folder, tmp_path):
    from mmspectral.apis import from_pretrained
    victim = tmp_path / 'outside.pth'
    torch.save({}, victim)
    path = folder('generator')
    init_cfg = dict(type='Pretrained', checkpoint='../../x.pth')
    cases = [(dict(config_of(path), tokenizer=dict(config_of(path)['tokenizer'], init_cfg=init_cfg)),
              'names something outside the folder'),
             (dict(config_of(path), tokenizer_checkpoint=str(victim)), 'names something outside the folder'),
             (dict(config_of(path), tokenizer=dict(config_of(path)['tokenizer'], quantizer=dict(
                 config_of(path)['tokenizer']['quantizer'], pretrained='../../outside.pth'))),
              r"tokenizer.quantizer.pretrained='../../outside.pth' names something outside the folder"),
             (dict(config_of(path), perceptual_loss=dict(type='BaseDataPreprocessor')),
              r"holds the keys \['perceptual_loss'\]")]
    for cfg, message in cases:
        forge(path, cfg)
        with pytest.raises(ValueError, match=message):
            from_pretrained(path)


def test_config_edited_after_saving_is_refused(folder):
    from mmspectral.apis import from_pretrained
    path = folder('generator')
    cfg = config_of(path)
    cfg['sampling']['cfg_scale'] = 7.0
    json.dump(cfg, open(osp.join(path, 'config.json'), 'w'))
    with pytest.raises(ValueError, match='config.json does not match the sha256 recorded') as info:
        from_pretrained(path)
    assert 'save_pretrained' in str(info.value)
    assert from_pretrained(path, verify=False).sampling['cfg_scale'] == 7.0  # checked as data all the same
    with open(osp.join(path, 'README.md'), 'a') as f:
        f.write('\nedited\n')
    forge(path)
    open(osp.join(path, 'README.md'), 'a').write('again\n')
    with pytest.raises(ValueError, match='README.md does not match the sha256 recorded'):
        from_pretrained(path)


@pytest.mark.parametrize('where,value,message', [
    (('tokenizer', 'depth'), 10 ** 6, r'tokenizer.depth=1000000 would build more repeated layers than'),
    (('tokenizer', 'codebook_size'), 10 ** 8, r'tokenizer.codebook_size=100000000 is beyond any model'),
    (('tokenizer', 'codebook_size'), 10 ** 7, r'does not describe the weights in .*shape mismatches'),
    (('tokenizer', 'width'), 4096, r'does not describe the weights in .*shape mismatches'),
    (('tokenizer', 'image_size'), 10 ** 5, r'tokenizer.image_size=100000 is beyond any model'),
])
def test_declared_sizes_are_checked_against_the_weights_before_building(folder, built_only_on_meta, where,
                                                                        value, message):
    from mmspectral.apis import from_pretrained
    path = folder()
    cfg = config_of(path)
    cfg[where[0]][where[1]] = value
    forge(path, cfg)
    with pytest.raises(ValueError, match=message):
        from_pretrained(path)
    assert set(built_only_on_meta) <= {'meta'}


def test_generator_depth_against_small_weights_is_refused_before_building(folder, built_only_on_meta):
    from mmspectral.apis import init_generator
    path = folder('generator')
    cfg = config_of(path)
    cfg['generator']['depth'] = 10 ** 6
    forge(path, cfg)
    with pytest.raises(ValueError, match=r'generator.depth=1000000 would build more repeated layers than '
                                         r'.*model.safetensors holds tensors \(\d+\)'):
        init_generator(path)
    assert built_only_on_meta == []
    cfg['generator']['depth'] = 3  # fewer blocks than the weights hold: refused by the shapes
    forge(path, cfg)
    with pytest.raises(ValueError, match=r'not in the model: generator.blocks.3'):
        init_generator(path)
    assert built_only_on_meta == ['meta']
    cfg['generator']['depth'], cfg['tokenizer']['codebook_size'] = 4, 10 ** 7  # the pair disagrees
    forge(path, cfg)
    with pytest.raises(ValueError, match=r'does not describe a model that can be built \(The generator has '
                                         r'vocab_size=512 but the tokenizer has vocab_size=10000000'):
        init_generator(path)


def test_links_odd_files_and_broken_json_are_named(folder, tmp_path):
    from mmspectral.apis import from_pretrained, init_tokenizer
    path = folder()
    outside = tmp_path / 'config_copy.json'
    outside.write_text(open(osp.join(path, 'config.json')).read())
    os.remove(osp.join(path, 'config.json'))
    os.symlink(outside, osp.join(path, 'config.json'))
    with pytest.raises(ValueError, match=r'config.json is a symbolic link \(to .*config_copy.json\).*cp -L'):
        from_pretrained(path)
    os.remove(osp.join(path, 'config.json'))
    os.mkdir(osp.join(path, 'config.json'))
    with pytest.raises(ValueError, match='config.json is not a regular file'):
        from_pretrained(path)
    os.rmdir(osp.join(path, 'config.json'))
    forge(path, files={'config.json': '{"type": "TokenizerModel", '})
    with pytest.raises(ValueError, match=r'config.json is not valid JSON \(Expecting'):
        from_pretrained(path)
    forge(path, files={'config.json': '{"type": NaN}'})
    with pytest.raises(ValueError, match='holds NaN, which is not a number JSON allows'):
        from_pretrained(path)
    forge(path, files={'config.json': '{"type": "TokenizerModel", "tokenizer": ' + '[' * 40 + ']' * 40 + '}'})
    with pytest.raises(ValueError, match=r'config.json nests deeper than 32 levels at tokenizer\[0\]'):
        from_pretrained(path)
    forge(path, files={'config.json': '[' * 100000 + ']' * 100000})
    with pytest.raises(ValueError, match='config.json nests its values too deeply to read'):
        from_pretrained(path)
    meta = osp.join(path, 'mmspectral_model.json')
    os.replace(meta, tmp_path / 'meta_elsewhere.json')
    os.symlink(tmp_path / 'absent.json', meta)  # a dangling link
    with pytest.raises(ValueError, match=r'mmspectral_model.json is a symbolic link \(to .*absent.json\)'):
        init_tokenizer(path)
    path = folder('generator')
    open(osp.join(path, 'notes.txt'), 'w').write('not recorded')
    with pytest.raises(ValueError, match=r"holds \['notes.txt'\], which its mmspectral_model.json does not"):
        from_pretrained(path)


def test_saved_folders_cover_every_file_and_round_trip_bit_exactly(models, folder):
    from mmspectral.apis import from_pretrained
    from mmspectral.fileio import sha256_of_file
    from mmspectral.models.utils import persistent_tensors
    for kind in ('tokenizer', 'generator'):
        path = folder(kind)
        meta = json.load(open(osp.join(path, 'mmspectral_model.json')))
        assert meta['files_sha256'] == {name: sha256_of_file(osp.join(path, name))
                                        for name in ('config.json', 'model.safetensors', 'README.md')}
        # as readable as the card, which open() writes: a published folder is not private to its writer
        modes = {name: os.stat(osp.join(path, name)).st_mode & 0o777 for name in os.listdir(path)}
        assert set(modes.values()) == {modes['README.md']}, modes
        loaded, (model, _) = from_pretrained(path), models[kind]
        for net, own in ((loaded.tok, model.tok),) if kind == 'tokenizer' else (
                (loaded.gen, model.gen), (loaded.tokenizer, model.tokenizer)):
            mine, theirs = persistent_tensors(net), persistent_tensors(own)
            assert mine.keys() == theirs.keys()
            assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_folders_written_before_every_file_was_hashed_load_with_a_warning(folder):
    from mmspectral.apis import from_pretrained
    path = folder()
    meta_path = osp.join(path, 'mmspectral_model.json')
    meta = json.load(open(meta_path))
    del meta['files_sha256']
    json.dump(meta, open(meta_path, 'w'))
    with pytest.warns(UserWarning, match='only model.safetensors is verified; config.json is checked as'):
        model = from_pretrained(path)
    assert type(model).__name__ == 'TokenizerModel'
    forge(path, dict(config_of(path), _base_=['x.py']))  # still data only
    meta = json.load(open(meta_path))
    del meta['files_sha256']
    json.dump(meta, open(meta_path, 'w'))
    with warnings.catch_warnings(record=True) as seen, pytest.raises(ValueError, match="the key '_base_'"):
        warnings.simplefilter('always')
        from_pretrained(path)
    assert 'only model.safetensors is verified' in str(seen[0].message)


@pytest.mark.parametrize('kind', ['tokenizer', 'generator'])
def test_folders_written_before_the_tokenizer_owned_its_value_range_load_the_same(folder, kind):
    """A folder whose config holds the range where older versions wrote it (the tokenizer's data
    preprocessor, the generator's ``image_value_range``) loads with a DeprecationWarning and decodes exactly
    as the current folder of the same weights."""
    from mmspectral.apis import from_pretrained
    path = folder(kind)
    current = from_pretrained(path)
    cfg = config_of(path)
    value_range = cfg['tokenizer'].pop('value_range')
    assert tuple(value_range) == (-1.0, 1.0)
    if kind == 'tokenizer':
        cfg['data_preprocessor'] = dict(type='ImageDataPreprocessor', value_range=value_range)
    else:
        cfg['image_value_range'] = value_range
    forge(path, config=cfg)
    with pytest.warns(DeprecationWarning, match='the tokenizer owns its value range'):
        older = from_pretrained(path)
    assert older.codec.value_range == current.codec.value_range == (-1.0, 1.0)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ids = current.codec.encode_images(images)
    assert torch.equal(older.codec.encode_images(images), ids)
    assert torch.equal(older.codec.decode_images(ids[:, :5]), current.codec.decode_images(ids[:, :5]))
