"""The masks are tested by what they do to information flow through real attention layers."""
import pytest
import torch
import torch.nn.functional as F

from mmspectral.models import (BidirectionalMask, BlockCausalMask, SpectralCausalMask, TransformerBlock,
                               build_attn_mask)
from mmspectral.registry import ATTN_MASKS

P, N, C = 5, 6, 32  # context tokens, latents, width


class Stack(torch.nn.Module):
    """Three transformer blocks sharing one mask: enough depth for two-hop leaks to show."""

    def __init__(self, depth=3):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = torch.nn.ModuleList(TransformerBlock(C, 4) for _ in range(depth))

    def forward(self, x, mask):
        for block in self.blocks:
            x = block(x, attn_mask=mask)
        return x


def perturbed(x, index):
    y = x.clone()
    y[:, index] += torch.randn_like(y[:, index])
    return y


@pytest.fixture(scope='module')
def stack():
    return Stack().eval()


@pytest.fixture
def tokens():
    return torch.randn(2, P + N, C, generator=torch.Generator().manual_seed(1))


def test_spectral_causal_encoder_blocks_backward_flow(stack, tokens):
    mask = SpectralCausalMask()(N, P, layout='encoder')
    out = stack(tokens, mask)
    for j in range(N):
        changed = stack(perturbed(tokens, P + j), mask)
        # Latents before j never see latent j, through any path, and image tokens see no latent.
        assert torch.allclose(out[:, P:P + j], changed[:, P:P + j], atol=1e-6), f'latent {j} leaked backwards'
        assert torch.allclose(out[:, :P], changed[:, :P], atol=1e-6)
        assert not torch.allclose(out[:, P + j:], changed[:, P + j:], atol=1e-4)


def test_spectral_causal_decoder_mask_lets_later_latents_reach_earlier_ones(stack, tokens):
    """In the decoder, mask tokens read every present latent and every latent reads the mask tokens, so from
    the second layer on latent j reaches latent i < j through them: the decoder's spectral causal mask does
    not stop backward flow by itself. Within one layer it does.

    What keeps prefix k's output free of s_{k+1}..s_N is that absent latents are masked out (prefix_lengths),
    which this test checks too (and test_per_sample_prefix_equals_truncation in full).
    """
    mask = SpectralCausalMask()(N, P, layout='decoder')
    one_layer = Stack(depth=1).eval()
    out1, out = one_layer(tokens, mask), stack(tokens, mask)
    for j in range(1, N):
        changed = perturbed(tokens, P + j)
        assert torch.allclose(out1[:, P:P + j], one_layer(changed, mask)[:, P:P + j], atol=1e-6)
        assert not torch.allclose(out[:, P:P + j], stack(changed, mask)[:, P:P + j], atol=1e-4), j
        assert not torch.allclose(out[:, :P], stack(changed, mask)[:, :P], atol=1e-4)
    k = 3
    prefix_mask = SpectralCausalMask()(N, P, layout='decoder', prefix_lengths=torch.full((2,), k))
    out = stack(tokens, prefix_mask)
    for j in range(k, N):
        changed = stack(perturbed(tokens, P + j), prefix_mask)
        # mask tokens and present latents
        assert torch.allclose(out[:, :P + k], changed[:, :P + k], atol=1e-6)


def test_bidirectional_lets_information_flow_both_ways(stack, tokens):
    mask = BidirectionalMask()(N, P, layout='encoder')
    out = stack(tokens, mask)
    changed = stack(perturbed(tokens, P + N - 1), mask)
    assert not torch.allclose(out[:, P:P + N - 1], changed[:, P:P + N - 1], atol=1e-4)
    assert not torch.allclose(out[:, :P], changed[:, :P], atol=1e-4)


def test_image_tokens_seeing_latents_leaks_in_two_layers(stack, tokens):
    # The variant drawn in the paper's figure: latent j -> image tokens -> latent i < j.
    mask = SpectralCausalMask(context_sees_latents=True)(N, P, layout='encoder')
    assert mask[0, P + N - 1]
    out = stack(tokens, mask)
    changed = stack(perturbed(tokens, P + N - 1), mask)
    assert not torch.allclose(out[:, P:P + N - 1], changed[:, P:P + N - 1], atol=1e-4)


def test_block_causal_groups(stack, tokens):
    p = 2
    mask = BlockCausalMask(block_size=p)(N, P, layout='encoder')
    out = stack(tokens, mask)
    for j in range(N):
        changed = stack(perturbed(tokens, P + j), mask)
        start = (j // p) * p  # first latent of j's group
        assert torch.allclose(out[:, P:P + start], changed[:, P:P + start], atol=1e-6)
        assert not torch.allclose(out[:, P + start:], changed[:, P + start:], atol=1e-4)


@pytest.mark.parametrize('mask_cls', [BidirectionalMask, SpectralCausalMask, BlockCausalMask])
def test_per_sample_prefix_equals_truncation(stack, mask_cls):
    """With prefix k_b, a sample's outputs equal those of the sequence truncated to its k_b latents."""
    x = torch.randn(3, P + N, C, generator=torch.Generator().manual_seed(2))
    k = torch.tensor([1, 4, N])
    builder = mask_cls()
    mask = builder(N, P, layout='decoder', prefix_lengths=k)
    assert mask.shape == (3, 1, P + N, P + N) and mask.dtype == torch.bool
    out = stack(x, mask)
    assert torch.isfinite(out).all()
    for b in range(3):
        kb = int(k[b])
        short = stack(x[b:b + 1, :P + kb], builder(kb, P, layout='decoder'))
        assert torch.allclose(out[b:b + 1, :P + kb], short, atol=1e-5)
        # Absent latents change nothing that is present.
        if kb < N:
            y = perturbed(x[b:b + 1], slice(P + kb, P + N))
            changed = stack(y, mask[b:b + 1])
            assert torch.allclose(out[b:b + 1, :P + kb], changed[:, :P + kb], atol=1e-6)


def test_plain_causal_sequence_equals_sdpa_is_causal():
    q, k, v = torch.randn(3, 2, 4, 9, 8).unbind(0)
    builder = SpectralCausalMask()
    assert builder.is_plain_causal and not BlockCausalMask().is_plain_causal
    mask = builder(9, 0, layout='sequence')
    ours = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6)


def test_sequence_layout_context_is_a_visible_prefix():
    mask = BlockCausalMask(block_size=2)(4, 2, layout='sequence')
    expected = torch.tensor([[1, 1, 0, 0, 0, 0],
                             [1, 1, 0, 0, 0, 0],
                             [1, 1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 1, 1],
                             [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_masks_are_cached_and_validated():
    builder = SpectralCausalMask()
    assert builder(N, P) is builder(N, P)
    with pytest.raises(ValueError, match='layout'):
        builder(N, P, layout='cross')
    with pytest.raises(ValueError, match=r'\[0, 6\]'):
        builder(N, P, prefix_lengths=torch.tensor([7]))
    with pytest.raises(ValueError, match='block_size'):
        BlockCausalMask(block_size=0)


def test_masks_build_from_config_and_switch_by_type():
    for name in ('BidirectionalMask', 'SpectralCausalMask', 'BlockCausalMask'):
        built = build_attn_mask(dict(type=name, block_size=2, context_sees_latents=False))
        assert isinstance(built, ATTN_MASKS.get(name))
    assert build_attn_mask(dict(type='BidirectionalMask')).context_sees_latents
    assert not build_attn_mask(dict(type='SpectralCausalMask')).context_sees_latents


@pytest.mark.filterwarnings('ignore::UserWarning')
@pytest.mark.parametrize('mask_cls', [BidirectionalMask, SpectralCausalMask, BlockCausalMask])
@pytest.mark.parametrize('layout', ['encoder', 'decoder', 'sequence'])
def test_flex_block_mask_computes_what_the_dense_mask_does(mask_cls, layout):
    """flex_attention with the builder's BlockMask equals SDPA with its dense boolean mask (eager on the
    CPU)."""
    from torch.nn.attention.flex_attention import flex_attention
    builder = mask_cls(block_size=2)
    dense = builder(N, P, layout=layout)
    q, k, v = torch.randn(3, 2, 4, P + N, 16, generator=torch.Generator().manual_seed(3)).unbind(0)
    out = flex_attention(q, k, v, block_mask=builder.flex_block_mask(N, P, layout=layout))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=dense),
                               atol=1e-5, rtol=1e-5)
