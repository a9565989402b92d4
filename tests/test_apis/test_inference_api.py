"""The inference API and model folders on the quick start's own configs (random weights, 64 px, 16 tokens):
images of every kind in and out, folders that round-trip exactly and load without unpickling, bad folders
refused with a message, and the module's docstring examples run."""
import doctest
import fnmatch
import json
import os.path as osp

import numpy as np
import pytest
import torch

TOKENIZER_CONFIG = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'
GENERATOR_CONFIG = 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ['disk', 'ring', 'hbar', 'vbar', 'square', 'triangle', 'pair', 'cross', 'plus', 'quad']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Checkpoints as training writes them (random weights), and the models loaded from them."""
    from mmspectral.apis import init_generator, init_tokenizer, load_config
    from mmspectral.registry import MODELS
    repo_root = REPO_ROOT
    work = tmp_path_factory.mktemp('api')
    torch.manual_seed(0)
    tok_model = MODELS.build(load_config(osp.join(repo_root, TOKENIZER_CONFIG)).model)
    tok_ckpt = str(work / 'tokenizer.pth')
    torch.save(dict(state_dict=tok_model.state_dict(), meta=dict(iter=5)), tok_ckpt)
    options = {'model.tokenizer_checkpoint': tok_ckpt}
    gen_model = MODELS.build(load_config(osp.join(repo_root, GENERATOR_CONFIG), options).model)
    with torch.no_grad():  # a generator whose logits depend on the tokens and the class
        for p in gen_model.generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
    gen_ckpt = str(work / 'generator.pth')
    torch.save(dict(state_dict=gen_model.state_dict(), meta=dict(iter=7)), gen_ckpt)
    tokenizer = init_tokenizer(osp.join(repo_root, TOKENIZER_CONFIG), tok_ckpt)
    generator = init_generator(osp.join(repo_root, GENERATOR_CONFIG), gen_ckpt, cfg_options=options)
    generator.class_names = tuple(CLASSES)
    return dict(work=work, tokenizer=tokenizer, generator=generator, tok_ckpt=tok_ckpt, gen_ckpt=gen_ckpt)


def real_images(n=3, size=64):
    from mmspectral.evaluation.embedded_classifier import render_batch
    images, labels = render_batch(range(n), size, seed=1, num_classes=10, class_set='coarse')
    return images, labels


def test_reconstruct_takes_and_gives_every_image_kind(trained):
    from PIL import Image

    from mmspectral.apis import reconstruct
    tok = trained['tokenizer']
    images, _ = real_images()
    arrays = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    as_tensor = reconstruct(tok, torch.from_numpy(arrays).permute(0, 3, 1, 2), k=[1, 4, 16])
    as_numpy = reconstruct(tok, arrays, k=[1, 4, 16])
    as_pil = reconstruct(tok, [Image.fromarray(a) for a in arrays], k=[1, 4, 16])
    assert sorted(as_numpy) == [1, 4, 16]
    for k in (1, 4, 16):
        assert as_tensor[k].shape == (3, 3, 64, 64) and as_tensor[k].dtype == torch.float32
        assert as_numpy[k].shape == (3, 64, 64, 3) and as_numpy[k].dtype == np.uint8
        assert isinstance(as_pil[k], list) and as_pil[k][0].size == (64, 64)
        expect = (as_tensor[k] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(as_numpy[k], expect) and np.array_equal(np.asarray(as_pil[k][1]), expect[1])
    # the same as the tokenizer's own prefix decode, in [0, 1]
    lo, hi = tok.value_range
    x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255 * (hi - lo) + lo
    with torch.no_grad():
        own = ((tok.tok.decode_tokens(tok.tok.encode(x)[:, :4]) - lo) / (hi - lo)).clamp(0, 1)
    assert torch.allclose(as_tensor[4], own, atol=1e-5)
    one = reconstruct(tok, arrays[0])  # one image: one image back, all tokens
    assert one.shape == (64, 64, 3)
    big = reconstruct(tok, np.zeros((100, 80, 3), np.uint8))  # resized and centre-cropped to 64 px
    assert big.shape == (64, 64, 3)
    with pytest.raises(ValueError, match=r'Prefix lengths must lie in \[1, 16\]'):
        reconstruct(tok, arrays, k=17)
    with pytest.raises(ValueError, match='must lie in \\[0, 1\\]'):
        reconstruct(tok, images * 255)


def test_generate_truncation_names_and_seeds(trained):
    from mmspectral.apis import generate
    gen = trained['generator']
    full = generate(gen, [0, 1, 8], seed=3)
    assert full.shape == (3, 3, 64, 64)
    assert torch.equal(generate(gen, ['disk', 'ring', 'plus'], seed=3), full)  # names = indices
    tokens = gen.sample(torch.tensor([0, 1, 8]), decode=False, seed=3)
    for n in (1, 5, 12):
        truncated = generate(gen, [0, 1, 8], num_tokens=n, seed=3)
        assert torch.allclose(truncated, gen.decode(tokens['tokens'][:, :n]), atol=1e-6)
    pil = generate(gen, 'quad', seed=0, output='pil')
    assert len(pil) == 1 and pil[0].size == (64, 64)
    with pytest.raises(ValueError, match="Unknown class 'cat'"):
        generate(gen, ['cat'])
    with pytest.raises(ValueError, match='outside the generator'):
        generate(gen, [10])


def test_variations_and_super_resolution(trained, monkeypatch):
    from mmspectral.apis import super_resolve, variations
    gen = trained['generator']
    images, labels = real_images(2)
    made, generate = [], gen.gen.generate
    monkeypatch.setattr(gen.gen, 'generate', lambda *a, **kw: made.append(generate(*a, **kw)) or made[-1])
    out = variations(gen, images, labels.tolist(), keep=4, num=3, seed=0)
    assert len(out) == 2 and out[0].shape == (3, 3, 64, 64)
    # every variation starts from its image's own first 4 tokens, and the rest differs between variations
    tokens = made[-1].view(2, 3, 16)
    assert torch.equal(tokens[:, :, :4], gen.encode(images, 4)[:, None].expand(2, 3, 4))
    assert not torch.equal(tokens[:, 0, 4:], tokens[:, 1, 4:])
    assert torch.allclose(out[1][2], gen.decode(tokens[1, 2:3])[0], atol=1e-6)
    up = super_resolve(gen, images, labels.tolist(), seed=0)
    assert up.shape == (2, 3, 128, 128)
    assert super_resolve(gen, images, 0, mode='bicubic').shape == (2, 3, 128, 128)
    with pytest.raises(ValueError, match='keep must lie'):
        variations(gen, images, 0, keep=16)


def test_model_folders_round_trip_without_pickles(trained, monkeypatch):
    from mmspectral.apis import (from_pretrained, generate, init_generator, init_tokenizer, reconstruct,
                                 save_pretrained)
    from mmspectral.fileio import sha256_of_file
    work = trained['work']
    images, _ = real_images()
    tok_dir, gen_dir = str(work / 'tok_folder'), str(work / 'gen_folder')
    sha = save_pretrained(trained['tokenizer'], tok_dir, card=dict(metrics={'psnr': 18.4}, steps=5))
    save_pretrained(trained['generator'], gen_dir, card=dict(reproduce='bash tools/quickstart.sh'))
    for name in ('config.json', 'model.safetensors', 'README.md', 'mmspectral_model.json'):
        assert osp.getsize(osp.join(tok_dir, name)) > 0
    card = open(osp.join(tok_dir, 'README.md')).read()
    assert sha in card and sha == sha256_of_file(osp.join(tok_dir, 'model.safetensors')) and 'psnr' in card
    gen_config = json.load(open(osp.join(gen_dir, 'config.json')))
    assert 'checkpoint' not in json.dumps(gen_config)
    assert gen_config['class_names'] == list(CLASSES)  # where hub users look for the labels

    def no_unpickling(*args, **kwargs):
        raise AssertionError('a model folder must load without torch.load')
    monkeypatch.setattr(torch, 'load', no_unpickling)
    tok = init_tokenizer(tok_dir)
    gen = init_generator(gen_dir)
    assert gen.class_names == tuple(CLASSES) and type(from_pretrained(tok_dir)).__name__ == 'TokenizerModel'
    for k in (1, 7, 16):
        assert torch.equal(reconstruct(tok, images, k), reconstruct(trained['tokenizer'], images, k))
    assert torch.equal(generate(gen, [2, 5], seed=1), generate(trained['generator'], [2, 5], seed=1))
    # the folder's tokenizer is the generator's own: reconstructions through either agree
    assert torch.equal(reconstruct(gen, images, 16), reconstruct(trained['generator'], images, 16))
    with pytest.raises(FileExistsError, match='overwrite=True'):
        save_pretrained(tok, tok_dir)
    with pytest.raises(ValueError, match='holds a tokenizer, not a generator'):
        init_generator(tok_dir)


def test_damaged_folders_are_refused(trained, tmp_path):
    from mmspectral.apis import from_pretrained, save_pretrained
    from mmspectral.fileio import SafetensorsError
    folder = str(tmp_path / 'tok')
    save_pretrained(trained['tokenizer'], folder)
    weights = osp.join(folder, 'model.safetensors')
    data = open(weights, 'rb').read()
    open(weights, 'wb').write(data[:len(data) // 2])  # cut short
    with pytest.raises(SafetensorsError, match='does not match the sha256'):
        from_pretrained(folder)
    with pytest.raises(SafetensorsError, match='not a readable safetensors file'):
        from_pretrained(folder, verify=False)
    with pytest.raises(FileNotFoundError, match='not a model folder'):
        from_pretrained(str(tmp_path))
    meta = json.load(open(osp.join(folder, 'mmspectral_model.json')))
    json.dump(dict(meta, format=99), open(osp.join(folder, 'mmspectral_model.json'), 'w'))
    with pytest.raises(ValueError, match='reads format 1'):
        from_pretrained(folder)


def test_list_models_and_docstring_examples(trained, repo_root):
    import mmspectral.apis.inference as inference
    from mmspectral.apis import get_model, list_models, save_pretrained
    folder = str(trained['work'] / 'models' / 'generator')
    save_pretrained(trained['generator'], folder)
    found = list_models(roots=[str(trained['work'])], config_dir=osp.join(repo_root, 'configs'))
    names = {(m['name'], m['kind'], m['source']) for m in found}
    assert ('spectralar-tiny_16tok_1xb32-5k_shapes-64', 'tokenizer', 'config') in names
    assert ('spectralar-tiny-d4_16tok_1xb64-3k_shapes-64', 'generator', 'config') in names
    assert ('models/generator', 'generator', 'folder') in names  # named by its path below the root
    tiny = list_models('*tiny*', roots=[str(trained['work'])])
    assert tiny and all(fnmatch.fnmatchcase(m['name'], '*tiny*') for m in tiny)
    assert {m['name'] for m in tiny} < {m['name'] for m in found}
    assert list_models('models/*', roots=[str(trained['work'])]) == [
        m for m in found if m['source'] == 'folder' and m['name'].startswith('models/')]
    # every name loads: a folder by its name, a config by its name (and its checkpoint)
    loaded = get_model('models/generator', roots=[str(trained['work'])])
    assert torch.equal(loaded.gen.head.weight, trained['generator'].gen.head.weight)
    config = get_model('spectralar-tiny-d4_16tok_1xb64-3k_shapes-64', trained['gen_ckpt'],
                       cfg_options={'model.tokenizer_checkpoint': trained['tok_ckpt']})
    assert torch.equal(config.gen.head.weight, trained['generator'].gen.head.weight)
    with pytest.raises(FileNotFoundError, match="did you mean 'spectralar-tiny-d4"):
        get_model('spectralar-tiny-d4_16tok_1xb64-3k_shapes-6')
    result = doctest.testmod(inference, extraglobs=dict(generator_folder=folder),
                             optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


def test_class_names_in_a_generator_config_are_checked(trained, tmp_path):
    from mmspectral.apis import from_pretrained, init_generator, save_pretrained
    from mmspectral.apis.folder_checks import CONFIG_FILE
    repo_root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    options = {'model.tokenizer_checkpoint': trained['tok_ckpt']}
    named = init_generator(osp.join(repo_root, GENERATOR_CONFIG), trained['gen_ckpt'],
                           cfg_options=dict(options, **{'model.class_names': [f'c{i}' for i in range(10)]}))
    assert named.class_names == tuple(f'c{i}' for i in range(10))  # the config's, not the tokens' meta file
    for bad, why in (([f'c{i}' for i in range(9)], '9 names'), (['c0'] * 10, '1 different'),
                     ('disk ring', 'list of 10')):
        with pytest.raises(ValueError, match=why):
            init_generator(osp.join(repo_root, GENERATOR_CONFIG), trained['gen_ckpt'],
                           cfg_options=dict(options, **{'model.class_names': bad}))
        with pytest.raises(ValueError, match=why):
            save_pretrained(trained['generator'], str(tmp_path / 'bad'), class_names=bad, overwrite=True)
    folder = str(tmp_path / 'folder')
    save_pretrained(trained['generator'], folder, class_names=[f'n{i}' for i in range(10)])
    assert from_pretrained(folder).class_names == tuple(f'n{i}' for i in range(10))
    assert json.load(open(osp.join(folder, CONFIG_FILE)))['class_names'][3] == 'n3'
