import pytest
import torch
import torch.nn.functional as F

from mmspectral.models.layers import attention as attention_module
from mmspectral.models.layers.attention import Attention, StaticKVCache, small_query_attention


def reference(q, k, v, scale):
    """Attention in float64, written out."""
    weights = (q.double() @ k.double().transpose(-1, -2) * scale).softmax(-1)
    return weights @ v.double()


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_small_query_attention_matches_float64_and_sdpa(seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    queries = 1 + seed % 4
    keys = int(torch.randint(1, 40, (1,), generator=gen))
    q, k, v = (torch.randn(3, 4, n, 16, generator=gen).to(dtype) for n in (queries, keys, keys))
    scale = [1.0, 0.25, 4.0, 16 ** -0.5][seed]
    ours = small_query_attention(q, k, v, scale)
    assert ours.dtype == dtype and ours.shape == q.shape
    exact = reference(q, k, v, scale)
    sdpa = F.scaled_dot_product_attention(q, k, v, scale=scale)
    # fp32 accumulation and one rounding of the output: as close to float64 as SDPA itself
    tol = 1e-5 if dtype == torch.float32 else 8e-3
    assert (ours.double() - exact).abs().max() <= tol * exact.abs().max()
    assert (ours.double() - exact).abs().max() <= 1.5 * (sdpa.double() - exact).abs().max() + 1e-6


def cached_calls(layer, x, dtype):
    """Feed x (B, L, C) one position at a time through a KV cache; returns the outputs (B, L, C)."""
    b, n, c = x.shape
    cache = StaticKVCache(b, layer.num_heads, n, c // layer.num_heads, dtype, x.device)
    return torch.cat([layer(x[:, i:i + 1], cache=cache, cache_start=i) for i in range(n)], dim=1)


@pytest.mark.parametrize('qk_norm', [False, True])
def test_cached_bf16_steps_take_the_matmul_path_and_equal_causal_sdpa(qk_norm, monkeypatch):
    torch.manual_seed(0)
    layer = Attention(64, 4, qkv_bias=True, k_bias=not qk_norm, qk_norm=qk_norm).eval()
    x = torch.randn(2, 12, 64)
    with torch.no_grad():
        full = layer.to(torch.bfloat16)(x.to(torch.bfloat16), is_causal=True)  # SDPA, causal
        calls = []
        monkeypatch.setattr(attention_module, 'small_query_attention',
                            lambda *a: calls.append(1) or small_query_attention(*a))
        stepped = cached_calls(layer, x.to(torch.bfloat16), torch.bfloat16)
    assert len(calls) == 12
    assert (stepped.float() - full.float()).abs().max() <= 2e-2 * full.float().abs().max()


def test_fp32_masked_and_long_query_calls_stay_on_sdpa(monkeypatch):
    torch.manual_seed(0)
    layer = Attention(32, 2).eval()
    monkeypatch.setattr(attention_module, 'small_query_attention',
                        lambda *a: pytest.fail('took the small-query path'))
    with torch.no_grad():
        cached_calls(layer, torch.randn(2, 5, 32), torch.float32)  # fp32: SDPA
        bf16 = layer.to(torch.bfloat16)
        cache = StaticKVCache(2, 2, 16, 16, torch.bfloat16, torch.device('cpu'))
        bf16(torch.randn(2, 8, 32, dtype=torch.bfloat16), cache=cache)  # 8 queries at once: SDPA
        bf16(torch.randn(2, 3, 32, dtype=torch.bfloat16))  # no cache: SDPA
