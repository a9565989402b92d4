import math

import numpy as np
import pytest
import torch

from mmspectral.models import NestedSpectralTokenizer, TiTokTokenizer, VectorQuantizer
from mmspectral.models.tokenizers import PrefixSampler
from mmspectral.spectral import lowpass

TINY = dict(image_size=32, patch_size=8, num_tokens=8, width=64, depth=2, num_heads=4, token_size=4,
            codebook_size=32)


def tiny(cls=NestedSpectralTokenizer, **kwargs):
    torch.manual_seed(0)
    return cls(**{**TINY, **kwargs}).eval()


@pytest.fixture(scope='module')
def images():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_causal_prefix_encoding_equals_slicing_and_costs_less(images):
    tok = tiny()
    assert tok.is_causal
    lengths = []
    handle = tok.encoder.transformer[0].register_forward_pre_hook(
        lambda m, args: lengths.append(args[0].shape[1]))
    full = tok.encode(images)
    for k in range(1, 9):
        assert torch.equal(tok.encode(images, num_tokens=k), full[:, :k])
        assert torch.allclose(tok.encode_continuous(images, k), tok.encode_continuous(images)[:, :k],
                              atol=1e-5)
    handle.remove()
    context = 1 + (32 // 8) ** 2
    # A prefix of k tokens runs the encoder on context + k tokens only (calls: full, then per k: encode(k),
    # encode_continuous(k), encode_continuous()).
    assert lengths[0] == context + 8
    assert lengths[1::3] == [context + k for k in range(1, 9)]


def test_bidirectional_tokens_depend_on_later_queries(images):
    tok = tiny(TiTokTokenizer)
    assert not tok.is_causal
    full = tok.encoder(images, tok.latent_tokens, tok.attn_mask)
    short = tok.encoder(images, tok.latent_tokens, tok.attn_mask, num_tokens=3)
    assert not torch.allclose(short, full[:, :3], atol=1e-4)  # why TiTok must encode all N and slice
    assert torch.equal(tok.encode(images, 3), tok.encode(images)[:, :3])


def test_every_prefix_decodes(images):
    for cls in (NestedSpectralTokenizer, TiTokTokenizer):
        tok = tiny(cls)
        ids = tok.encode(images)
        for k in (1, 4, 8):
            out = tok.decode_tokens(ids[:, :k])
            assert out.shape == (3, 3, 32, 32) and torch.isfinite(out).all()
        with pytest.raises(ValueError, match='1..8 tokens'):
            tok.decode_tokens(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize('cls', [NestedSpectralTokenizer, TiTokTokenizer])
def test_per_sample_prefixes_in_one_pass_equal_separate_passes(images, cls):
    tok = tiny(cls)
    k = torch.tensor([1, 5, 8])
    with torch.no_grad():
        batched = tok(images, k)['output']
        quantized, _ = tok.quantize(tok.encode_continuous(images))
        for b in range(3):
            single = tok.decode(quantized[b:b + 1, :int(k[b])])
            assert torch.allclose(batched[b:b + 1], single, atol=1e-5)


def test_later_queries_get_no_gradient_from_a_short_prefix(images):
    """With the spectral causal mask, the loss of prefix k cannot reach latent queries j > k."""
    for cls, leaks in ((NestedSpectralTokenizer, False), (TiTokTokenizer, True)):
        tok = tiny(cls).train()
        out = tok(images, torch.full((3,), 3))
        out['output'].pow(2).mean().backward()
        grad = tok.latent_tokens.grad
        assert grad[:3].abs().sum() > 0
        assert (grad[3:].abs().sum() > 0) == leaks


def test_targets_are_the_low_pass_images_of_each_prefix(images):
    tok = tiny()
    k = torch.tensor([1, 4, 8])
    target = tok.target(images, k)
    for b in range(3):
        w = tok.freq_schedule.omega(int(k[b]))
        assert torch.allclose(target[b], lowpass(images[b:b + 1], w)[0], atol=1e-5)
    assert torch.allclose(target[2], images[2], atol=1e-5)  # the last prefix keeps the whole spectrum
    assert tiny(TiTokTokenizer).target(images, k) is images
    off = tiny(spectral_supervision=False)
    assert off.target(images, k) is images  # the ablation: full-image target for every prefix


def test_prefix_sampler():
    gen = torch.Generator().manual_seed(0)
    k = PrefixSampler(8)(1000, generator=gen)
    assert k.min() == 1 and k.max() == 8 and len(k.unique()) == 8
    same = PrefixSampler(8, per_sample=False)(16, generator=gen)
    assert (same == same[0]).all()
    assert (PrefixSampler(8, distribution='full')(4) == 8).all()
    assert PrefixSampler(8, min_length=6)(200, generator=gen).min() == 6
    assert (tiny(TiTokTokenizer).sample_prefix_lengths(5) == 8).all()
    with pytest.raises(ValueError, match='distribution'):
        PrefixSampler(8, distribution='geometric')


@pytest.mark.parametrize('fraction', [0.0, 0.25, 0.5, 1.0])
def test_prefix_sampler_full_fraction_decodes_all_tokens_in_that_share_of_samples(fraction):
    """full_fraction of the samples get k = N, the rest k uniform in 1..N (so N also appears there, 1/N)."""
    n, count = 8, 40_000
    k = PrefixSampler(n, full_fraction=fraction)(count, generator=torch.Generator().manual_seed(3))
    assert k.min() >= 1 and k.max() <= n
    expected_full = fraction + (1 - fraction) / n
    assert (k == n).float().mean().item() == pytest.approx(expected_full, abs=0.01)
    for j in range(1, n):  # every shorter length keeps its uniform share of the rest
        assert (k == j).float().mean().item() == pytest.approx((1 - fraction) / n, abs=0.01)
    with pytest.raises(ValueError, match='full_fraction'):
        PrefixSampler(n, full_fraction=1.5)


def test_paper_sizes_on_the_meta_device():
    with torch.device('meta'):
        tok = TiTokTokenizer(arch='B', decoder_head='proxy_codes')
        spectral = NestedSpectralTokenizer(arch='B')
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(tok.encoder) == 85_904_652  # TiTok-B-64's encoder
    assert count(tok.decoder) == 88_070_656  # and its decoder with the proxy-code head
    assert spectral.freq_schedule.omegas[-1] == 256 and spectral.num_tokens == 64


@pytest.mark.parametrize('init_std', [0.02, 'fan_in'])
def test_initialisation_has_titoks_std(init_std):
    """TiTok's trunc_normal_(std=0.02) cuts at +-2 (absolute), so the weights have the std asked for."""
    tok = tiny(TiTokTokenizer, width=128, init_std=init_std)
    for weight in (tok.encoder.transformer[0].mlp.fc1.weight, tok.decoder.transformer[1].attn.qkv.weight):
        std = 0.02 if init_std == 0.02 else weight[0].numel() ** -0.5
        assert weight.std().item() == pytest.approx(std, rel=0.04)


def test_construction_errors():
    with pytest.raises(ValueError, match='not divisible by patch_size'):
        tiny(image_size=30)
    with pytest.raises(ValueError, match='needs a freq_schedule'):
        tiny(TiTokTokenizer, spectral_supervision=True)
    with pytest.raises(ValueError, match=r'\(B, 3, 32, 32\)'):
        tiny().encode(torch.rand(1, 3, 64, 64))
    with pytest.raises(RuntimeError, match='pixel_decoder'):
        tiny(decoder_head='proxy_codes').decode_tokens(torch.zeros(1, 2, dtype=torch.long))


def test_legacy_projection_reinterprets_memory(images):
    tok = tiny(TiTokTokenizer, legacy_token_projection=True)
    assert not tok.is_causal
    enc = tok.encoder
    x = enc.patch_embed(images).flatten(2).transpose(1, 2)
    x = torch.cat([enc.class_embedding.expand(3, -1, -1), x], 1) + enc.positional_embedding
    x = torch.cat([x, (tok.latent_tokens + enc.latent_token_positional_embedding).expand(3, -1, -1)], 1)
    latent = enc.ln_post(enc.run(x, None)[:, enc.num_context:])  # (B, N, C)
    expected = (torch.einsum('bcn,dc->bnd', latent.reshape(3, 64, 8), enc.token_proj.weight)
                + enc.token_proj.bias)
    assert torch.allclose(tok.encode_continuous(images), expected, atol=1e-5)


def test_vector_quantizer():
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=16, token_size=4)
    z = torch.randn(2, 5, 4, requires_grad=True)
    q, info = vq(z)
    zn = torch.nn.functional.normalize(z, dim=-1)
    codes = torch.nn.functional.normalize(vq.embedding.weight, dim=-1)
    assert torch.equal(info['indices'], torch.cdist(zn, codes[None]).argmin(-1))
    assert torch.allclose(q, codes[info['indices']], atol=1e-6)
    assert torch.allclose(info['loss_codebook'], (q.detach() - zn.detach()).pow(2).mean())
    assert torch.allclose(info['loss_commit'], 0.25 * info['loss_codebook'])
    q.sum().backward()  # straight through: d q / d normalise(z) is the identity
    z2 = z.detach().clone().requires_grad_(True)
    torch.nn.functional.normalize(z2, dim=-1).sum().backward()
    assert torch.allclose(z.grad, z2.grad, atol=1e-6)
    stats = vq.usage(torch.tensor([[0, 0, 1, 1]]))
    assert (stats['codebook_usage'] == pytest.approx(2 / 16)
            and stats['codebook_perplexity'] == pytest.approx(2.0))
    with pytest.raises(ValueError, match=r'\[0, 16\)'):
        vq.lookup(torch.tensor([[16]]))


def test_dead_codes_are_restarted_onto_encoder_outputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=64, token_size=8, restart_dead_codes=True).train()
    # A collapsed encoder: every token is one of two directions plus tiny noise.
    base = torch.randn(2, 8)
    z = base[torch.randint(0, 2, (4, 32))] + 1e-3 * torch.randn(4, 32, 8)
    before = vq.usage(vq(z)[1]['indices'])['codebook_usage']
    for _ in range(3):
        _, info = vq(z + 1e-3 * torch.randn_like(z))
    after = vq.usage(info['indices'])['codebook_usage']
    assert after > before
    plain = VectorQuantizer(codebook_size=64, token_size=8).train()
    assert 'code_usage' not in dict(plain.named_buffers())


@pytest.mark.parametrize('shuffle', [1, 2, 8])
def test_conv_decoder_head(images, shuffle):
    """decoder_head='conv': pixels from a convolutional up-sampler (its last doublings a pixel shuffle with
    ``pixel_shuffle``); the prefix properties hold as with 'pixels'."""
    from mmspectral.registry import TOKENIZERS
    from mmspectral.utils import build_component
    cfg = dict(type='NestedSpectralTokenizer', decoder_head='conv', **TINY,
               conv_head=dict(channels=32, min_channels=8, convs_per_stage=1, pixel_shuffle=shuffle))
    torch.manual_seed(0)
    tok = build_component(cfg, TOKENIZERS).eval()
    assert tok.is_causal and tok.decoder_head == 'conv'
    ids = tok.encode(images)
    for k in range(1, 9):
        assert torch.equal(tok.encode(images, num_tokens=k), ids[:, :k])
        out = tok.decode_tokens(ids[:, :k])
        assert out.shape == (3, 3, 32, 32) and torch.isfinite(out).all()
    # a decoded pixel depends on the neighbouring patches (a linear patch head's does not)
    x = tok.quantizer.lookup(ids).requires_grad_(True)
    feats = []
    handle = tok.decoder.conv_head.register_forward_pre_hook(lambda m, args: feats.append(args[0]))
    out = tok.decode(x)
    handle.remove()
    grad, = torch.autograd.grad(out[0, :, 7, 7].sum(), feats[0])  # pixel (7, 7): the corner of patch (0, 0)
    assert grad[0, :, 0, 1].abs().sum() > 0 and grad[0, :, 1, 0].abs().sum() > 0
    assert tok.last_layer_weight() is tok.decoder.conv_head.conv_out.weight
    # registry round trip: a state dict of one loads into a fresh build of the same config
    other = build_component(cfg, TOKENIZERS).eval()
    other.load_state_dict(tok.state_dict())
    assert torch.equal(other.decode_tokens(ids), tok.decode_tokens(ids))
    with pytest.raises(ValueError, match='power-of-two patch_size'):
        build_component(dict(cfg, patch_size=4 * 3, image_size=36), TOKENIZERS)
    for bad in (0, 3, 16):
        with pytest.raises(ValueError, match='pixel_shuffle must be a power of two from 1 to the patch size'):
            build_component(dict(cfg, conv_head=dict(pixel_shuffle=bad)), TOKENIZERS)


@pytest.mark.parametrize('seed', range(3))
def test_blockiness_measures_patch_seams(seed):
    from mmspectral.evaluation import blockiness
    gen = torch.Generator().manual_seed(seed)
    # random sinusoids: smooth, and with no structure tied to a 16 px grid
    scale = torch.tensor([0.4, 6.3]).view(2, 1, 1, 1, 1, 1)
    freq, phase = torch.rand(2, 4, 3, 6, 1, 1, generator=gen) * scale
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing='ij')
    smooth = torch.sin(freq * (xx + 0.7 * yy) + phase).mean(2)  # (4, 3, 64, 64)
    assert 0.8 < blockiness(smooth, 16) < 1.2  # no preference for the patch boundaries
    patches = torch.rand(4, 3, 4, 4, generator=gen).repeat_interleave(16, -1).repeat_interleave(16, -2)
    assert blockiness(patches + 0.01 * smooth, 16) > 5  # flat patches: every step is at a seam
    # shifting the seams off the grid removes them from the measure
    assert blockiness(torch.roll(patches + 0.01 * smooth, (8, 8), dims=(-1, -2)), 16) < 0.5


@pytest.mark.parametrize('seed', range(3))
def test_region_errors(seed):
    """The object's colour error is the distance of mean colours in the region only; PSNR follows the MSE."""
    from mmspectral.evaluation import region_errors
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(4, 3, 16, 16, generator=gen)
    region = torch.zeros(4, 16, 16)
    region[:, 4:12, 4:12] = 1
    shift = torch.tensor([0.1, -0.2, 0.05]).view(1, 3, 1, 1)
    noise = 0.3 * torch.rand(4, 3, 16, 16, generator=gen)
    pred = target + shift * region.unsqueeze(1) + noise * (1 - region[:, None])
    inside = region_errors(pred, target, region)
    assert inside['colour_error'] == pytest.approx(float(shift.norm()), abs=1e-5)  # the outside is ignored
    assert inside['pixel_mae'] == pytest.approx(0.35 / 3, abs=1e-5)
    assert inside['psnr'] == pytest.approx(float(-10 * torch.log10(shift.pow(2).mean())), abs=1e-3)
    assert region_errors(target, target, region)['colour_error'] == 0
    assert region_errors(pred, target, 1 - region)['colour_error'] > 0
    one_empty = region.clone()
    one_empty[0] = 0  # an image without the region is left out, not counted as a perfect one
    assert region_errors(pred, target, one_empty)['colour_error'] == pytest.approx(inside['colour_error'])
    with pytest.raises(ValueError, match='empty in every image'):
        region_errors(pred, target, torch.zeros(4, 16, 16))
    with pytest.raises(ValueError, match='weights'):
        region_errors(pred, target, region[:, None])


@pytest.mark.parametrize('class_set', ['fine', 'coarse'])
def test_object_mask_covers_the_drawn_object(class_set):
    """EmbeddedShapes' object mask is where the image differs from its background: saturated object colour
    inside, background outside; the dataset's mask matches the image it serves."""
    import cv2

    from mmspectral.datasets import EmbeddedShapesDataset, render_shape, render_shape_and_mask
    data = EmbeddedShapesDataset(num_samples=20, image_size=64, seed=3, class_set=class_set)
    for i in range(20):
        img, mask = render_shape_and_mask(3, i, i % 10, 64, class_set)
        assert np.array_equal(img, render_shape(3, i, i % 10, 64, class_set))
        assert np.array_equal(data.get_data_info(i)['img'], img) and np.array_equal(data.object_mask(i), mask)
        assert mask.shape == (64, 64) and 0 <= mask.min() and mask.max() <= 1
        assert 0.02 < (mask > 0.5).mean() < 0.6
        sat = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1] / 255.0
        assert np.median(sat[mask > 0.99]) > np.median(sat[mask < 0.01]) + 0.2


def test_tiny_config_tokenizer_is_causal_with_the_conv_head(repo_root):
    """The quick start's tokenizer, built from its config: conv head, every prefix encodes on its own and
    decodes to a full-size image, and its state dict round-trips through a fresh build."""
    from mmspectral.apis import load_config, register_all_modules
    from mmspectral.registry import MODELS
    register_all_modules()
    cfg = load_config(f'{repo_root}/configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py')
    torch.manual_seed(0)
    tok = MODELS.build(cfg.model).tokenizer.eval()
    assert tok.decoder_head == 'conv' and tok.is_causal and tok.decoder.conv_head.shuffle.upscale_factor == 2
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        ids = tok.encode(images)
        for k in range(1, tok.num_tokens + 1):
            assert torch.equal(tok.encode(images, num_tokens=k), ids[:, :k])
            assert tok.decode_tokens(ids[:, :k]).shape == (2, 3, 64, 64)
        other = MODELS.build(cfg.model).tokenizer.eval()
        other.load_state_dict(tok.state_dict())
        assert torch.equal(other.decode_tokens(ids), tok.decode_tokens(ids))


@pytest.mark.parametrize('seed', range(3))
def test_band_psnr_splits_the_error_by_dct_band(seed):
    """The bands' errors add up to the image's (Parseval), and an error made of low frequencies only lands in
    the low bands."""
    from mmspectral.evaluation import band_psnr, psnr
    from mmspectral.spectral import lowpass
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(3, 3, 32, 32, generator=gen)
    pred = target + 0.1 * torch.randn(3, 3, 32, 32, generator=gen)
    edges = (0, 2, 4, 8, 16, 32)
    bands = band_psnr(pred[:1], target[:1], edges)
    assert list(bands) == ['w0-2', 'w2-4', 'w4-8', 'w8-16', 'w16-32']
    total = sum(10 ** (-v / 10) for v in bands.values())
    assert -10 * math.log10(total) == pytest.approx(float(psnr(pred[:1], target[:1])), abs=1e-3)
    smooth = target + lowpass(pred - target, 4)  # the error keeps only the top-left 4 x 4 block
    low = band_psnr(smooth, target, edges)
    assert low['w0-2'] < 60 and low['w2-4'] < 60 and min(low['w4-8'], low['w8-16'], low['w16-32']) > 80
    with pytest.raises(ValueError, match='edges must increase from 0'):
        band_psnr(pred, target, (0, 8, 4))


@pytest.mark.parametrize('seed', range(3))
def test_progression_steps_measures_each_change(seed):
    """Each step's change is the mean |x_k - x_{k-1}|; a prefix that adds nothing is not a visible step, and
    render_batch's masks are the renderer's own for the images it returns."""
    from mmspectral.datasets import render_shape_and_mask
    from mmspectral.evaluation import VISIBLE_STEP, progression_steps
    from mmspectral.evaluation.embedded_classifier import render_batch
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(2, 3, 8, 8, generator=gen) * 0.5
    sizes = torch.rand(5, generator=gen) * 0.05
    sizes[2] = 0  # this prefix changes nothing
    images = [base]
    for size in sizes:
        images.append(images[-1] + size * torch.sign(torch.randn(2, 3, 8, 8, generator=gen)))
    out = progression_steps(images)
    assert out['step_change'] == pytest.approx(sizes.tolist(), abs=1e-6)
    assert out['visible_steps'] == int((sizes >= VISIBLE_STEP).sum()) and out['visible'] == VISIBLE_STEP
    assert progression_steps(images, visible=0.0)['visible_steps'] == 5
    with pytest.raises(ValueError, match='at least two'):
        progression_steps(images[:1])
    with pytest.raises(ValueError, match='one shape'):
        progression_steps([base, base[:1]])
    images, labels, masks = render_batch(range(seed, seed + 6), 32, seed, class_set='coarse', with_masks=True)
    assert torch.equal(images, render_batch(range(seed, seed + 6), 32, seed, class_set='coarse')[0])
    for j, i in enumerate(range(seed, seed + 6)):
        assert np.array_equal(masks[j].numpy(), render_shape_and_mask(seed, i, i % 10, 32, 'coarse')[1])
