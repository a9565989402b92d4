"""``GeneratorModel.sample`` is the one sampling surface: it merges the config's defaults, turns a seed into
the RNG, packs the CPU weights and streams decoded previews; the applications and the plain sampler agree
with it token for token."""
import warnings

import pytest
import torch

from mmspectral.models.generators import DEFAULT_CFG_SCALE, generate_tokens, make_rng

TOKENIZER = dict(type='NestedSpectralTokenizer', width=32, depth=1, num_heads=2, image_size=32, patch_size=8,
                 num_tokens=8, token_size=4, codebook_size=64, init_std='fan_in', value_range=(-1.0, 1.0))
GENERATOR = dict(type='SpectralARGenerator', depth=2, vocab_size=64, num_tokens=8, num_classes=4,
                 init_adaln_gamma=1.0, init_head=1.0, drop_path_rate=0.0)


def model(**sampling):
    from mmspectral.models import GeneratorModel
    torch.manual_seed(0)
    return GeneratorModel(generator=GENERATOR, tokenizer=TOKENIZER, sampling=sampling or None).eval()


@pytest.mark.parametrize('seed', range(4))
def test_sample_is_the_plain_sampler_with_the_configs_defaults_and_the_seeds_rng(seed):
    m = model(cfg_scale=2.0, top_k=20, temperature=1.3)
    labels = torch.tensor([0, 3, 1])
    out = m.sample(labels, seed=seed, return_logits=True)
    plain = m.gen.generate(labels, rng=make_rng(seed), cfg_scale=2.0, top_k=20, temperature=1.3,
                           return_logits=True)
    assert torch.equal(out['tokens'], plain['tokens'])
    assert torch.allclose(out['logits'], plain['logits'], atol=1e-4)  # packed against plain weights
    assert torch.equal(out['images'], m.decode(out['tokens']))
    # a call's setting overrides the config's; the rng and the seed are the same randomness
    over = m.sample(labels, decode=False, rng=make_rng(seed), top_k=5)['tokens']
    assert torch.equal(over, generate_tokens(m.gen, labels, seed=seed, cfg_scale=2.0, top_k=5,
                                             temperature=1.3))
    assert torch.equal(m.sample(labels, decode=False, seed=seed, pack_weights=False)['tokens'], out['tokens'])


def test_previews_and_applications_go_through_sample():
    m = model()
    labels = torch.tensor([1, 2])
    seen = []
    out = m.sample(labels, seed=4, on_step=lambda k, images: seen.append((k, images)))
    assert [k for k, _ in seen] == list(range(1, 9))
    for k, images in seen:
        assert torch.equal(images, m.decode(out['tokens'][:, :k]))
    assert torch.equal(seen[-1][1], out['images'])
    progression = m.progression(labels, seed=4)
    assert torch.equal(progression['tokens'], out['tokens'])
    assert all(torch.equal(a[1], b[1]) for a, b in zip(progression['steps'], seen))
    # truncated generation: the first n tokens of the full run
    assert torch.equal(m.sample(labels, decode=False, seed=4, num_tokens=3)['tokens'], out['tokens'][:, :3])
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    kept = m.encode(images, 3)
    var = m.variations(images, labels, keep=3, num=2, seed=6)
    ref = m.sample(labels.repeat_interleave(2), seed=6, prefix=kept.repeat_interleave(2, 0))['images']
    assert torch.equal(var, ref.view(2, 2, 3, 32, 32))


def test_the_rngs_old_name_still_works_with_a_deprecation_warning():
    m = model()
    labels = torch.tensor([0, 1])
    with pytest.warns(DeprecationWarning, match='rng='):
        old = m.sample(labels, decode=False, generator=make_rng(2))['tokens']
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert torch.equal(old, m.sample(labels, decode=False, seed=2)['tokens'])


@pytest.mark.parametrize('key,hint', [('seed', 'sample(labels, seed=...)'), ('generator', 'rng=...'),
                                      ('callback', "takes no argument 'callback'")])
def test_a_seed_or_rng_in_the_configs_sampling_is_refused_with_what_to_do(key, hint):
    from mmspectral.utils.build import UnknownArgumentError
    with pytest.raises(UnknownArgumentError, match=hint.replace('(', r'\(').replace(')', r'\)')):
        model(**{key: 1})


def test_packing_is_sized_by_the_merged_guidance():
    """The packed layout is chosen for the rows of a cached step: doubled under guidance (the default scale
    when neither the config nor the call sets one), single without."""
    m = model()
    seen = []
    original = m.gen.packed
    m.gen.packed = lambda batch, cfg: (seen.append((batch, cfg)), original(batch, cfg))[1]
    m.sample(torch.tensor([0, 1, 2]), decode=False, seed=0)
    m.sample(torch.tensor([0, 1, 2]), decode=False, seed=0, cfg_scale=0.0)
    assert seen == [(3, DEFAULT_CFG_SCALE), (3, 0.0)]
