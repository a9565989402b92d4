"""The tokenizer owns its image contract: its value range reaches the data preprocessor and the perceptual
loss from one constructor argument, a differing one is refused, older configs adopt theirs, and the
tokenizer's [0, 1] <-> value-range mappings and prefix <-> cut-off methods agree with what they replace."""
import copy
import warnings

import pytest
import torch

from mmspectral.models.tokenizers.loading import adopt_value_range, settle_value_range
from mmspectral.utils.value_range import check_value_range, from_unit, to_unit, uint8_normalisation

TINY = dict(type='NestedSpectralTokenizer', width=32, depth=1, num_heads=2, image_size=32, patch_size=8,
            num_tokens=8, token_size=4, codebook_size=64, init_std='fan_in')
RANGES = [(0.0, 1.0), (-1.0, 1.0), (-0.5, 2.0), (0.0, 255.0)]


def tokenizer_model(**kwargs):
    from mmspectral.models import TokenizerModel
    torch.manual_seed(0)
    return TokenizerModel(**kwargs)


@pytest.mark.parametrize('value_range', RANGES)
def test_mappings_invert_each_other_and_match_the_uint8_normalisation(value_range):
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(sum(value_range).__hash__() % 97))
    assert torch.allclose(to_unit(from_unit(x, value_range), value_range), x, atol=1e-5)
    mean, std = uint8_normalisation(value_range)
    values = torch.arange(256.0)
    assert torch.allclose((values - mean) / std, from_unit(values / 255, value_range), atol=1e-4)
    assert (values[0] - mean) / std == pytest.approx(value_range[0])
    assert (values[-1] - mean) / std == pytest.approx(value_range[1], rel=1e-6)


@pytest.mark.parametrize('bad', [(1.0, 0.0), (0.0, 0.0), (0.0,), 'ab', None])
def test_a_bad_range_is_refused_with_its_owner(bad):
    with pytest.raises(ValueError, match='mine: value_range must be'):
        check_value_range(bad, 'mine')


@pytest.mark.parametrize('value_range', RANGES)
def test_preprocessor_and_perceptual_loss_take_the_tokenizers_range(value_range):
    model = tokenizer_model(tokenizer=dict(TINY, value_range=value_range),
                            perceptual_loss=dict(type='LPIPSLoss', allow_random_init=True))
    assert model.value_range == value_range == model.data_preprocessor.value_range
    assert model.perceptual_loss.value_range == value_range == model.codec.value_range
    # the preprocessor maps 0 and 255 onto the range's ends
    batch = dict(inputs=[torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2).expand(3, 2, 2).clone()])
    out = model.data_preprocessor(batch)['inputs']
    assert torch.allclose(out[0, 0, 0], torch.tensor(value_range), atol=1e-5)


@pytest.mark.parametrize('where', ['data_preprocessor', 'perceptual_loss'])
def test_a_differing_range_elsewhere_is_refused_naming_both(where):
    component = dict(type='ImageDataPreprocessor') if where == 'data_preprocessor' else \
        dict(type='LPIPSLoss', allow_random_init=True)
    component['value_range'] = (0.0, 1.0)
    message = (rf'model\.{where}\.value_range=\(0\.0, 1\.0\) differs from the tokenizer\'s '
               r'value_range=\(-1\.0, 1\.0\).*model\.tokenizer\.value_range only')
    with pytest.raises(ValueError, match=message):
        tokenizer_model(tokenizer=dict(TINY, value_range=(-1.0, 1.0)), **{where: component})
    # the same range repeated is accepted
    tokenizer_model(tokenizer=dict(TINY, value_range=(0.0, 1.0)), **{where: component})


def test_an_older_config_adopts_its_preprocessor_range_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match=r'model\.data_preprocessor\.value_range is deprecated'):
        model = tokenizer_model(tokenizer=dict(TINY),
                                data_preprocessor=dict(type='ImageDataPreprocessor', value_range=(-1, 1)))
    assert model.value_range == (-1.0, 1.0) == model.data_preprocessor.value_range
    # the network is the one the new config builds, weight for weight (nothing else drew random numbers)
    new = tokenizer_model(tokenizer=dict(TINY, value_range=(-1.0, 1.0)))
    for (name, a), (_, b) in zip(model.state_dict().items(), new.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize('legacy', [dict(image_value_range=(-1.0, 1.0)),
                                    dict(encode_on_the_fly=True,
                                         data_preprocessor=dict(type='ImageDataPreprocessor',
                                                                value_range=(-1.0, 1.0)))])
def test_an_older_generator_config_adopts_its_range(legacy):
    from mmspectral.models import GeneratorModel
    gen = dict(type='SpectralARGenerator', depth=1, width=32, num_heads=2, vocab_size=64, num_tokens=8,
               num_classes=3)
    with pytest.warns(DeprecationWarning, match='is deprecated: the tokenizer owns its value range'):
        model = GeneratorModel(generator=gen, tokenizer=dict(TINY), **legacy)
    assert model.codec.value_range == (-1.0, 1.0) == model.image_value_range
    with pytest.raises(ValueError, match="differs from the tokenizer's value_range"):
        GeneratorModel(generator=gen, tokenizer=dict(TINY, value_range=(0.0, 1.0)), **legacy)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a current config warns about nothing
        current = GeneratorModel(generator=gen, tokenizer=dict(TINY, value_range=(-1.0, 1.0)),
                                 encode_on_the_fly=True)
    assert current.data_preprocessor.value_range == (-1.0, 1.0)
    # a preprocessor the config names without a range is given the tokenizer's
    named = GeneratorModel(generator=gen, tokenizer=dict(TINY, value_range=(-1.0, 1.0)),
                           encode_on_the_fly=True, data_preprocessor=dict(type='ImageDataPreprocessor'))
    assert named.data_preprocessor.value_range == (-1.0, 1.0)


def test_settle_moves_legacy_keys_onto_the_tokenizer_and_leaves_current_configs_alone():
    legacy = dict(type='TokenizerModel', tokenizer=dict(TINY),
                  data_preprocessor=dict(type='ImageDataPreprocessor', value_range=[-1, 1]),
                  perceptual_loss=dict(type='LPIPSLoss', value_range=[-1, 1]))
    before = copy.deepcopy(legacy)
    with pytest.warns(DeprecationWarning):
        settled = settle_value_range(legacy)
    assert legacy == before  # a copy
    assert settled['tokenizer']['value_range'] == (-1.0, 1.0)
    assert settled['data_preprocessor'] == dict(type='ImageDataPreprocessor')
    assert settled['perceptual_loss'] == dict(type='LPIPSLoss')
    current = dict(type='GeneratorModel', generator=dict(type='SpectralARGenerator'),
                   tokenizer=dict(TINY, value_range=(-1.0, 1.0)))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert settle_value_range(current) == current
    # a built tokenizer keeps its own range and refuses another
    from mmspectral.models import NestedSpectralTokenizer
    tok = NestedSpectralTokenizer(**{k: v for k, v in TINY.items() if k != 'type'})
    assert adopt_value_range(tok, {'x': None}) == (tok, (0.0, 1.0))
    with pytest.raises(ValueError, match='x=.*differs'):
        adopt_value_range(tok, {'x': (-1, 1)})


@pytest.mark.parametrize('value_range', RANGES)
def test_encode_and_decode_images_are_the_value_range_mappings_around_the_network(value_range):
    from mmspectral.models import NestedSpectralTokenizer
    torch.manual_seed(1)
    tok = NestedSpectralTokenizer(**{k: v for k, v in TINY.items() if k != 'type'},
                                  value_range=value_range).eval()
    uint8 = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(2))
    unit = uint8.float() / 255
    ids = tok.encode_images(unit)
    assert torch.equal(ids, tok.encode(from_unit(unit, value_range)))
    from mmspectral.models import ImageDataPreprocessor
    pre = ImageDataPreprocessor(value_range=value_range)
    assert torch.equal(tok.encode_images(uint8), tok.encode(pre(dict(inputs=list(uint8)))['inputs']))
    for k in (1, 3, 8):
        images = tok.decode_images(ids[:, :k])
        raw = tok.decode_tokens(ids[:, :k])
        assert torch.equal(images, to_unit(raw.float(), value_range).clamp(0, 1))
        assert torch.equal(tok.decode_images(ids[:, :k], clamp=False), to_unit(raw.float(), value_range))


def test_cutoffs_and_targets_follow_the_schedule():
    from mmspectral.models import NestedSpectralTokenizer, TiTokTokenizer
    from mmspectral.spectral import lowpass
    args = {k: v for k, v in TINY.items() if k != 'type'}
    nested = NestedSpectralTokenizer(**args)
    omegas = nested.cutoffs()
    assert omegas == list(nested.freq_schedule.omegas) and len(omegas) == 8 and omegas[-1] == 32
    assert [nested.cutoff(k) for k in range(1, 9)] == omegas
    ks = torch.tensor([1, 4, 8, 2])
    assert torch.equal(nested.cutoff(ks), torch.tensor([omegas[k - 1] for k in ks.tolist()]))
    assert torch.allclose(nested.relative_cutoff(ks), torch.tensor([omegas[k - 1] / 32 for k in ks.tolist()]))
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    assert torch.equal(nested.target(images, ks), lowpass(images, nested.cutoff(ks)))
    assert torch.equal(nested.target(images, 3), lowpass(images, omegas[2]))
    assert nested.prefix_for_band() == sum(w <= 16 for w in omegas)
    assert nested.prefix_for_band(32) == 8 and nested.prefix_for_band(0) == 1
    titok = TiTokTokenizer(**{k: v for k, v in args.items()})
    assert titok.cutoffs() is None and titok.cutoff(3) is None
    assert torch.equal(titok.target(images, ks), images)
    assert torch.equal(titok.relative_cutoff(ks), torch.ones(4))
    assert titok.prefix_for_band() == 4  # half of the tokens for half of the band
    # a schedule kept for evaluation only (the nospectral row): a cut-off, but the whole image as target
    unsupervised = NestedSpectralTokenizer(**args, spectral_supervision=False)
    assert unsupervised.cutoffs() == omegas and torch.equal(unsupervised.target(images, ks), images)
