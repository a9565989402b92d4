"""The inference API checks the types and values of what it is given before any work: a wrong argument is a
TypeError or ValueError that names it and says what is expected, and no sampling step has run."""
import functools
import math
import os.path as osp

import numpy as np
import pytest
import torch

from mmspectral.apis import (generate, init_generator, init_tokenizer, list_models, load_config, reconstruct,
                             super_resolve, variations)
from mmspectral.registry import MODELS
from mmspectral.utils.build import UnknownArgumentError

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOKENIZER_CONFIG = osp.join(REPO_ROOT, 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py')
GENERATOR_CONFIG = osp.join(REPO_ROOT, 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py')


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """A tokenizer and a generator of the quick start's configs (random weights, 64 px, 16 tokens, 10
    classes), and the generator's checkpoint."""
    work = tmp_path_factory.mktemp('args')
    torch.manual_seed(0)
    tok = MODELS.build(load_config(TOKENIZER_CONFIG).model).eval()
    torch.save(dict(state_dict=tok.state_dict()), str(work / 'tok.pth'))
    options = {'model.tokenizer_checkpoint': str(work / 'tok.pth')}
    gen = MODELS.build(load_config(GENERATOR_CONFIG, options).model).eval()
    torch.save(dict(state_dict=gen.state_dict()), str(work / 'gen.pth'))
    return dict(tok=tok, gen=gen, gen_ckpt=str(work / 'gen.pth'), work=work)


@pytest.fixture
def no_sampling(models, monkeypatch):
    """The generator's ``generate``, counting its calls (its signature kept, so keys are still checked)."""
    gen = models['gen'].gen
    calls = []
    original = gen.generate

    @functools.wraps(original)
    def counted(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(gen, 'generate', counted)
    return calls


IMAGE = np.zeros((64, 64, 3), np.uint8)
# (call, exception, what the message must say); ``m`` is the fixture's dict of models
CASES = [
    # generate: the model, classes, seeds, output and every sampling setting
    (lambda m: generate(m['tok'], [0]), TypeError, 'needs a generator'),
    (lambda m: generate('work_dirs/generator', [0]), TypeError, 'init_generator'),
    (lambda m: generate(m['gen'], [1.5]), TypeError, 'class indices'),
    (lambda m: generate(m['gen'], [True]), TypeError, 'class indices'),
    (lambda m: generate(m['gen'], {0: 1}), TypeError, 'classes must be'),
    (lambda m: generate(m['gen'], [10]), ValueError, 'outside the generator'),
    (lambda m: generate(m['gen'], [-1]), ValueError, 'outside the generator'),
    (lambda m: generate(m['gen'], [0], num_tokens=0), ValueError, r'num_tokens must be an integer in \['),
    (lambda m: generate(m['gen'], [0], num_tokens=17), ValueError, 'num_tokens'),
    (lambda m: generate(m['gen'], [0], num_tokens=2.5), TypeError, 'num_tokens must be an integer'),
    (lambda m: generate(m['gen'], [0], cfg_scale=math.nan), ValueError, 'cfg_scale must be a finite'),
    (lambda m: generate(m['gen'], [0], cfg_scale=-1.0), ValueError, 'cfg_scale must be a guidance weight'),
    (lambda m: generate(m['gen'], [0], cfg_scale='1.5'), TypeError, 'cfg_scale must be a number'),
    (lambda m: generate(m['gen'], [0], temperature=0), ValueError, 'temperature must be a finite number > 0'),
    (lambda m: generate(m['gen'], [0], temperature=math.inf), ValueError, 'temperature'),
    (lambda m: generate(m['gen'], [0], top_k=-1), ValueError, 'top_k must be an integer >= 0'),
    (lambda m: generate(m['gen'], [0], top_k=2.5), TypeError, 'top_k must be an integer'),
    (lambda m: generate(m['gen'], [0], top_p=1.5), ValueError, r'top_p must be a probability in \[0, 1\]'),
    (lambda m: generate(m['gen'], [0], cfg_schedule='cosine'), ValueError, 'cfg_schedule must be one of'),
    (lambda m: generate(m['gen'], [0], cfg_schedul='linear'), UnknownArgumentError,
     "Did you mean 'cfg_schedule'"),
    (lambda m: generate(m['gen'], [0], seed=-1), ValueError, 'seed must be an integer >= 0'),
    (lambda m: generate(m['gen'], [0], seed='0'), TypeError, 'seed must be an integer'),
    (lambda m: generate(m['gen'], [0], output='png'), ValueError, 'output must be one of'),
    # reconstruct
    (lambda m: reconstruct('work_dirs/tokenizer', IMAGE), TypeError, 'init_tokenizer'),
    (lambda m: reconstruct(m['tok'], IMAGE, k=2.5), TypeError, 'k must be a prefix length'),
    (lambda m: reconstruct(m['tok'], IMAGE, k=[]), TypeError, 'non-empty list'),
    (lambda m: reconstruct(m['tok'], IMAGE, k=0), ValueError, r'Prefix lengths must lie in \[1, 16\]'),
    (lambda m: reconstruct(m['tok'], IMAGE, output='jpeg'), ValueError, 'output must be one of'),
    # variations and super-resolution
    (lambda m: variations(m['tok'], IMAGE, 0, keep=4), TypeError, 'needs a generator'),
    (lambda m: variations(m['gen'], IMAGE, 0, keep=4.0), TypeError, r'keep must lie in \[1, 15\]'),
    (lambda m: variations(m['gen'], IMAGE, 0, keep=4, num=0), ValueError, 'num .* must be an integer >= 1'),
    (lambda m: variations(m['gen'], IMAGE, 0, keep=4, top_p=2.0), ValueError, 'top_p'),
    (lambda m: super_resolve(m['gen'], IMAGE, 0, mode='nearest'), ValueError, 'mode must be one of'),
    (lambda m: super_resolve(m['gen'], IMAGE, 0, temperature=-1.0), ValueError, 'temperature'),
    (lambda m: super_resolve(m['gen'], np.stack([IMAGE] * 3), [0, 1]), ValueError, 'one per image'),
    # loading and listing
    (lambda m: init_generator(123), TypeError, 'config must be the path'),
    (lambda m: init_generator(str(m['work'] / 'missing.py'), m['gen_ckpt']), FileNotFoundError,
     'does not exist'),
    (lambda m: init_generator(GENERATOR_CONFIG, str(m['work'] / 'missing.pth')), FileNotFoundError,
     'checkpoint .* does not exist'),
    (lambda m: init_generator(GENERATOR_CONFIG, m['gen_ckpt'], device='gpu'), ValueError, 'device must be'),
    (lambda m: init_tokenizer(TOKENIZER_CONFIG, cfg_options=['model.x=1']), TypeError, 'cfg_options must be'),
    (lambda m: init_generator(GENERATOR_CONFIG, m['gen_ckpt'], cfg_options={'model.genrator.depth': 2}),
     ValueError, 'did you mean model.generator'),
    (lambda m: list_models(roots=5), TypeError, 'roots must be a folder'),
]


@pytest.mark.parametrize('call,error,message', CASES, ids=[f'{i}:{c[2][:30]}' for i, c in enumerate(CASES)])
def test_bad_arguments_are_refused_before_any_sampling(call, error, message, models, no_sampling):
    with pytest.raises(error, match=message):
        call(models)
    assert no_sampling == [], 'a sampling step ran before the argument was refused'


def test_good_arguments_still_work(models, no_sampling):
    gen = models['gen']
    images = generate(gen, np.array([0, 9]), num_tokens=np.int64(4), seed=0, top_k=0, top_p=1.0,
                      cfg_scale=0, temperature=0.5, output='numpy')
    assert images.shape == (2, 64, 64, 3) and len(no_sampling) == 1
    assert generate(gen, torch.tensor(3), seed=1).shape == (1, 3, 64, 64)  # a 0-d index tensor: one class
    assert reconstruct(models['tok'], IMAGE, k=range(1, 3))[2].shape == (64, 64, 3)
    assert list_models(roots=str(models['work']), config_dir=str(models['work'])) == []  # one root as a str


def test_a_config_with_impossible_sampling_settings_is_refused_when_built(tmp_path):
    tok = MODELS.build(load_config(TOKENIZER_CONFIG).model)
    torch.save(dict(state_dict=tok.state_dict()), str(tmp_path / 'tok.pth'))
    for key, value, named in (('top_p', 2.0, 'model.sampling: top_p'), ('top_k', -3, 'model.sampling: top_k'),
                              ('cfg_schedul', 'linear', "Did you mean 'cfg_schedule'")):
        options = {'model.tokenizer_checkpoint': str(tmp_path / 'tok.pth'), f'model.sampling.{key}': value}
        with pytest.raises((ValueError, TypeError), match=named):
            MODELS.build(load_config(GENERATOR_CONFIG, options).model)


@pytest.mark.parametrize('options,ok', [
    (dict(cfg_scale=0, cfg_schedule='constant', top_k=0, top_p=0.0, temperature=1.0, num_tokens=None), True),
    (dict(cfg_scale=1.5, top_k=np.int64(900), top_p=1, temperature=0.01, num_tokens=16), True),
    (dict(use_cache=False, pack_weights=True), True),  # other arguments of generate are not looked at
    (dict(top_k=True), False), (dict(cfg_scale=None), False), (dict(num_tokens=np.float32(3)), False),
    (dict(top_p=-0.1), False), (dict(temperature=-0.0), False), (dict(cfg_scale=math.inf), False),
])
def test_sampling_options_ranges(options, ok):
    from mmspectral.models.generators import check_sampling_options
    if ok:
        check_sampling_options(options, 16)
    else:
        with pytest.raises((TypeError, ValueError), match=next(iter(options))):
            check_sampling_options(options, 16)
