import pytest
import torch

from mmspectral.models import SpectralARGenerator
from mmspectral.models.generators import cfg_weight, filter_logits, generate_tokens, guide
from mmspectral.models.layers.packed_linear import bf16_supported

TINY = dict(depth=2, vocab_size=32, num_tokens=8, num_classes=4, init_adaln_gamma=1.0, init_head=1.0,
            drop_path_rate=0.0)


def tiny(**kwargs):
    torch.manual_seed(0)
    return SpectralARGenerator(**{**TINY, **kwargs}).eval()


@pytest.mark.parametrize('preset,params', [('d16', 310e6), ('d20', 600e6), ('d24', 1.0e9), ('d30', 2.0e9)])
def test_presets_match_the_papers_sizes(preset, params):
    with torch.device('meta'):
        model = SpectralARGenerator.from_preset(preset, vocab_size=4096, num_tokens=64)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / params - 1) < 0.05
    depth = int(preset[1:])
    assert model.width == 64 * depth and model.num_heads == depth


@pytest.mark.parametrize('mask', [None, dict(type='BlockCausalMask', block_size=4)])
def test_position_i_sees_only_earlier_tokens(mask):
    model = tiny(attn_mask=mask)
    p = model.block_size
    tokens = torch.randint(0, 32, (2, 8))
    labels = torch.tensor([1, 2])
    logits = model(tokens, labels)
    for j in range(8):
        changed = tokens.clone()
        changed[:, j] = (changed[:, j] + 1) % 32
        out = model(changed, labels)
        first_affected = (j // p + 1) * p  # positions of later groups read token j
        assert torch.allclose(out[:, :first_affected], logits[:, :first_affected], atol=1e-5)
        if first_affected < 8:
            assert not torch.allclose(out[:, first_affected:], logits[:, first_affected:], atol=1e-4)


@pytest.mark.parametrize('mask', [None, dict(type='BlockCausalMask', block_size=4)])
@pytest.mark.parametrize('cfg', [0.0, 1.5])
def test_cached_sampling_equals_uncached(mask, cfg):
    model = tiny(attn_mask=mask)
    labels = torch.tensor([0, 3, 1])
    kwargs = dict(cfg_scale=cfg, top_k=10, top_p=0.9, temperature=1.3, return_logits=True)
    cached = generate_tokens(model, labels, seed=7, **kwargs)
    uncached = generate_tokens(model, labels, seed=7, use_cache=False, **kwargs)
    assert torch.equal(cached['tokens'], uncached['tokens'])
    assert torch.allclose(cached['logits'], uncached['logits'], atol=1e-5)
    # And both equal teacher forcing on the sampled tokens (guidance off).
    if cfg == 0:
        forced = model(cached['tokens'], labels)
        assert torch.allclose(forced, cached['logits'], atol=1e-4)


def varied(mask=None):
    """A tiny generator whose logits spread over several units, so a change of guidance weight flips
    tokens."""
    torch.manual_seed(1)
    model = SpectralARGenerator(depth=2, vocab_size=64, num_tokens=16, num_classes=4, attn_mask=mask,
                                init_adaln_gamma=1.0, init_head=1.0, init_adaln=1.0,
                                drop_path_rate=0.0).eval()
    with torch.no_grad():
        model.head.weight.mul_(4.0)
        # classes (and the null class) far apart: guidance changes the logits
        model.class_emb.weight.mul_(8.0)
    return model


@pytest.mark.parametrize('mask', [None, dict(type='BlockCausalMask', block_size=4)])
def test_truncated_generation_is_the_prefix_of_the_full_one(mask):
    """Table 3's truncation discards the last tokens: for every seed and length, cached or not, with or
    without a prefix, the truncated tokens equal the first n of the full generation with the same
    settings, and so do their guided logits. With p = 4 the lengths include every remainder mod 4 (5, 6,
    7, 9, 10, 13: the last step is cut inside its group) and a multiple of 4 (12: the last step is whole)."""
    model = varied(mask)
    labels = torch.tensor([0, 1, 2, 3])
    kwargs = dict(cfg_scale=1.5, cfg_schedule='linear', top_k=20, top_p=0.9)
    logits = model(torch.randint(0, 64, (4, 16)), labels)
    assert logits.std() > 1.0  # the test needs logits that vary
    flips = 0
    for seed in range(6):
        full_out = generate_tokens(model, labels, seed=seed, return_logits=True, **kwargs)
        full = full_out['tokens']
        # The guidance ramp matters on this model: ramping over fewer steps changes most full generations.
        flips += not torch.equal(full, generate_tokens(model, labels, seed=seed,
                                                       **{**kwargs, 'cfg_schedule': 'constant'}))
        prefix = full[:, :3]
        for n in (2, 5, 6, 7, 9, 10, 12, 13):
            for use_cache in (True, False):
                short = generate_tokens(model, labels, seed=seed, num_tokens=n, use_cache=use_cache,
                                        return_logits=True, **kwargs)
                assert torch.equal(short['tokens'], full[:, :n]), (seed, n, use_cache)
                # the guided logits too: the same guidance weight at every kept position
                assert torch.allclose(short['logits'], full_out['logits'][:, :n], atol=1e-5), \
                    (seed, n, use_cache)
                cont = generate_tokens(model, labels, seed=seed + 100, num_tokens=n, prefix=prefix,
                                       use_cache=use_cache, **kwargs)
                whole = generate_tokens(model, labels, seed=seed + 100, prefix=prefix, use_cache=use_cache,
                                        **kwargs)
                assert torch.equal(cont, whole[:, :n]), (seed, n, use_cache, 'prefix')
    assert flips >= 4


def test_initialisation_has_vars_std():
    """VAR's truncated normal cuts at +-2 (absolute): at std ~0.03 nothing is cut and the weights have that
    std."""
    model = SpectralARGenerator(depth=4, vocab_size=512, num_tokens=16, num_classes=10)
    std = (1 / (3 * model.width)) ** 0.5
    for name in ('blocks.0.attn.qkv.weight', 'blocks.1.ffn.fc1.weight', 'word_embed.weight', 'pos_1LC'):
        weight = model.get_parameter(name) if name != 'pos_1LC' else model.pos_1LC
        assert weight.std().item() == pytest.approx(std, rel=0.04), name
    assert model.class_emb.weight.abs().max() > 2.5 * std  # not cut at +-2 std


def test_seed_truncation_prefix_and_callback():
    model = tiny()
    labels = torch.tensor([0, 1])
    a = generate_tokens(model, labels, seed=3)
    assert a.shape == (2, 8) and a.dtype == torch.long
    assert torch.equal(a, generate_tokens(model, labels, seed=3))
    assert not torch.equal(a, generate_tokens(model, labels, seed=4))
    # truncation = an early stop
    assert torch.equal(generate_tokens(model, labels, seed=3, num_tokens=5), a[:, :5])
    prefix = torch.tensor([[5, 6, 7], [8, 9, 10]])
    varied = generate_tokens(model, labels, seed=11, prefix=prefix)
    assert torch.equal(varied[:, :3], prefix)
    seen = []
    generate_tokens(model, labels, seed=3, callback=lambda step, toks: seen.append(toks.shape[1]))
    assert seen == list(range(1, 9))
    p4 = tiny(attn_mask=dict(type='BlockCausalMask', block_size=4))
    seen = []
    generate_tokens(p4, labels, seed=3, callback=lambda step, toks: seen.append(toks.shape[1]))
    assert seen == [4, 8]  # 2 steps of 4 tokens


def test_label_dropout_and_checks():
    model = tiny()
    model.train()
    labels = torch.zeros(4000, dtype=torch.long)
    torch.manual_seed(0)
    dropped = (model.condition(labels, drop=True) == model.class_emb.weight[4]).all(-1).float().mean()
    assert 0.08 < dropped < 0.12
    with pytest.raises(ValueError, match=r'\(B, 8\)'):
        model(torch.zeros(2, 7, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match='causal mask'):
        tiny(attn_mask=dict(type='BidirectionalMask'))
    with pytest.raises(ValueError, match='divisible'):
        tiny(attn_mask=dict(type='BlockCausalMask', block_size=3))


def test_guidance_and_filters():
    assert cfg_weight(1.5, 'constant', 3, 10) == 1.5
    assert cfg_weight(1.5, 'linear', 0, 10) == 0 and cfg_weight(1.5, 'linear', 9, 10) == 1.5
    cond, uncond = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert torch.allclose(guide(torch.cat([cond, uncond]), 0.5), torch.tensor([[2.5, -0.5]]))
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[True, True, False, False, False]]
    probs = logits.softmax(-1)[0]  # 0.64, 0.23, 0.09, 0.03, 0.01: nucleus = the fewest tokens reaching p
    assert probs[:2].sum() < 0.9 < probs[:3].sum() and probs[:1].sum() < 0.85 < probs[:2].sum()
    assert torch.isfinite(filter_logits(logits, top_p=0.9)).tolist() == [[True, True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.85)).tolist() == [[True, True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).sum() == 1
    assert torch.allclose(filter_logits(logits, temperature=2.0), logits / 2)


@pytest.mark.parametrize('seed', range(12))
def test_top_k_with_top_p_equals_top_k_then_top_p(seed):
    """Both filters together (one sort) keep what top-k, then top-p on its survivors, keep; also with the many
    ties of logits that come from bf16. Between tokens of equal logit at the nucleus' edge the sort picks
    (it is not stable), so what must agree is the kept values of every row; they do, and mostly the tokens."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 300, generator=gen) * (1 + seed % 5)
    if seed % 2:
        logits = logits.to(torch.bfloat16).float()  # ties, also at the k-th largest value
    top_k, top_p = [1, 7, 50, 150, 299, 300][seed % 6], [0.5, 0.9, 0.96, 0.3, 0.99, 0.8][seed // 2]
    both = filter_logits(logits, top_k=top_k, top_p=top_p)
    sequential = filter_logits(filter_logits(logits, top_k=top_k), top_p=top_p)
    assert torch.equal(both.sort(-1).values, sequential.sort(-1).values)
    assert torch.equal(both[torch.isfinite(both)], logits[torch.isfinite(both)])


def test_packed_cpu_weights_give_the_same_samples_and_follow_weight_changes():
    model = tiny()
    labels = torch.tensor([0, 2])
    kwargs = dict(seed=5, cfg_scale=1.5, return_logits=True)
    plain = generate_tokens(model, labels, pack_weights=False, **kwargs)
    packed = generate_tokens(model, labels, **kwargs)
    assert model._packed_weights  # the packed copies were made (CPU, fp32)
    assert torch.equal(plain['tokens'], packed['tokens'])
    assert torch.allclose(plain['logits'], packed['logits'], atol=1e-4)
    with torch.no_grad():
        model.head.weight.mul_(3.0)  # an optimiser step changes weights in place
    changed = generate_tokens(model, labels, **kwargs)
    assert torch.allclose(changed['logits'],
                          generate_tokens(model, labels, pack_weights=False, **kwargs)['logits'], atol=1e-4)
    with torch.no_grad():
        model.head.bias.add_(0.5 * torch.randn_like(model.head.bias))  # a bias alone changes too
    assert torch.allclose(generate_tokens(model, labels, **kwargs)['logits'],
                          generate_tokens(model, labels, pack_weights=False, **kwargs)['logits'], atol=1e-4)
    assert isinstance(model.head.forward.__self__, torch.nn.Linear)  # the layers are restored afterwards
    # Another batch size repacks for its row count and still agrees.
    five = torch.tensor([0, 1, 2, 3, 4])
    assert torch.equal(generate_tokens(model, five, **kwargs)['tokens'],
                       generate_tokens(model, five, pack_weights=False, **kwargs)['tokens'])
    # A copy (an EMA copy, a bf16 copy to sample with) starts without the packed tensors, which cannot be
    # copied.
    import copy
    twin = copy.deepcopy(model)
    assert model._packed_weights and not twin._packed_weights
    assert torch.equal(generate_tokens(twin, five, **kwargs)['tokens'],
                       generate_tokens(model, five, **kwargs)['tokens'])
    model.release_packed_weights()
    assert not model._packed_weights


@pytest.mark.skipif(not bf16_supported(), reason='this CPU has no native bf16 in oneDNN')
@pytest.mark.parametrize('weights', ['fp32 under autocast', 'bf16'])
def test_packed_bf16_sampling_gives_the_tokens_of_the_bf16_reference_path(weights):
    """bf16 sampling packs bf16 copies once; the reference is the same bf16 model on the default kernels."""
    model = tiny()
    if weights == 'bf16':
        model = model.to(torch.bfloat16)
    labels = torch.tensor([0, 2, 4, 1])
    for seed in range(3):
        kwargs = dict(seed=seed, cfg_scale=1.5, top_k=40, top_p=0.95, return_logits=True)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=weights != 'bf16'):
            plain = generate_tokens(model, labels, pack_weights=False, **kwargs)
            packed = generate_tokens(model, labels, **kwargs)
        dtypes = {entry[0][2] for entry in model._packed_weights.values()}
        assert dtypes == {torch.bfloat16}  # bf16 copies, not the fp32 ones
        assert torch.equal(plain['tokens'], packed['tokens'])
        assert torch.allclose(plain['logits'].float(), packed['logits'].float(), atol=0.1, rtol=0.02)
    # The fp32 path afterwards repacks in fp32 (the cache key holds the dtype) and agrees with plain fp32.
    if weights != 'bf16':
        kwargs = dict(seed=0, cfg_scale=1.5, return_logits=True)
        assert torch.allclose(generate_tokens(model, labels, **kwargs)['logits'],
                              generate_tokens(model, labels, pack_weights=False, **kwargs)['logits'],
                              atol=1e-4)
        assert {entry[0][2] for entry in model._packed_weights.values()} == {torch.float32}


@pytest.mark.parametrize('approximate', ['none', 'tanh'])
def test_packed_mlp_runs_its_gelu_inside_fc1_and_leaves_gated_mlps_alone(approximate):
    from functools import partial

    from timm.layers import GluMlp, Mlp

    from mmspectral.models.layers.packed_linear import packed_linears, packing_available
    torch.manual_seed(0)
    net = torch.nn.ModuleDict(dict(
        mlp=Mlp(16, 64, act_layer=partial(torch.nn.GELU, approximate=approximate)),
        glu=GluMlp(16, 64, act_layer=partial(torch.nn.GELU, approximate=approximate)))).eval()
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        plain = {name: layer(x) for name, layer in net.items()}
        cache = {}
        with packed_linears(net, cache, rows=15) as packed:
            assert packed == packing_available(net)
            if packed:  # the MLP's activation is fc1's post-op, the gated one keeps its own
                assert 'forward' in vars(net['mlp'].act) and 'forward' not in vars(net['glu'].act)
            fused = {name: layer(x) for name, layer in net.items()}
    for name in plain:
        assert torch.allclose(fused[name], plain[name], atol=1e-5), name
    assert 'forward' not in vars(net['mlp'].act) and 'forward' not in vars(net['mlp'].fc1)  # restored
