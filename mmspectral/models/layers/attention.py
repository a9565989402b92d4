"""The one attention layer of mmspectral, on ``torch.nn.functional.scaled_dot_product_attention``.

One exception: a cached sampling step on the CPU in half precision (a few query rows against the KV cache)
runs as two fp32 matmuls with a softmax between them. There the CPU's flash kernel, built for long query
blocks, took twice as long for one query row in bf16 (0.67 against 0.34 ms per call, d16 at batch 8 with
guidance, docs/results.md); both accumulate in fp32 and round the output once, so the results agree to bf16
rounding. In fp32 the two ran equally fast and SDPA stays.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Query rows up to which a cached CPU step in half precision takes the matmul path (a sampling step: p rows).
SMALL_QUERY_ROWS = 4


def small_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Unmasked attention of a few queries over (cached) keys in fp32: ``softmax(q k^T scale) v``, in q's
    dtype. q (B, H, Lq, D); k, v (B, H, Lk, D)."""
    weights = torch.matmul(q.float(), k.float().transpose(-1, -2))
    if scale != 1.0:
        weights = weights * scale
    return torch.matmul(weights.softmax(-1), v.float()).to(q.dtype)


class StaticKVCache(nn.Module):
    """Preallocated keys and values of one attention layer: ``(B, H, max_len, D)`` each.

    ``write(k, v, start)`` stores the new positions ``[start, start + L)`` and returns views of all positions
    written so far, ``[0, start + L)``. Nothing is allocated while sampling.
    """

    def __init__(self, batch_size: int, num_heads: int, max_len: int, head_dim: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__()
        shape = (batch_size, num_heads, max_len, head_dim)
        self.register_buffer('k', torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer('v', torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def write(self, k: torch.Tensor, v: torch.Tensor, start: int):
        end = start + k.shape[2]
        if end > self.k.shape[2]:
            raise ValueError(f'KV cache overflow: writing positions up to {end}, capacity {self.k.shape[2]}.')
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection.

    The fused ``qkv`` weight stacks the q, k and v projections row-wise, the layout of
    ``nn.MultiheadAttention.in_proj_weight``, so such weights load without reshuffling.

    Args:
        dim: model width C.
        num_heads: heads; ``dim`` must be divisible by it.
        qkv_bias: biases on the q, k and v projections.
        k_bias: with ``qkv_bias``, whether k has a bias too. VAR's attention has none (its q and v biases are
            then separate parameters ``q_bias`` / ``v_bias``).
        qk_norm: l2-normalise q and k and scale the logits by a learnable per-head factor (initially 4, at
            most 100) instead of ``1 / sqrt(head_dim)``, as VAR.
        attn_drop: dropout on attention weights (training only).
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, k_bias: bool = True,
                 qk_norm: bool = False, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'Attention width {dim} is not divisible by num_heads={num_heads}.')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.separate_qv_bias = qkv_bias and not k_bias
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias and k_bias)
        if self.separate_qv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
            self.register_buffer('zero_k_bias', torch.zeros(dim), persistent=False)
        self.qk_norm = qk_norm
        if qk_norm:
            self.scale_mul = nn.Parameter(torch.full((1, num_heads, 1, 1), math.log(4.0)))
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def project_qkv(self, x: torch.Tensor):
        """x (B, L, C) -> q, k, v (B, H, L, D), normalised and scaled as configured."""
        b, n, _ = x.shape
        qkv = self.qkv(x)  # through the module, so that a packed (sampling) Linear replaces it
        if self.separate_qv_bias:
            qkv = qkv + torch.cat([self.q_bias, self.zero_k_bias, self.v_bias])
        qkv = qkv.view(b, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self.qk_norm:  # q and k normalised in one call: a sampling step is bound by its small operations
            q, k = F.normalize(qkv[:, :, :2], dim=-1).permute(2, 0, 3, 1, 4).unbind(0)
            q = q * self.scale_mul.clamp(max=math.log(100.0)).exp().to(q.dtype)
        return q, k, v

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False,
                cache: Optional[StaticKVCache] = None, cache_start: int = 0) -> torch.Tensor:
        """x: (B, L, C); attn_mask: bool (L, L) or (B, 1, L, L), True = may attend. Returns (B, L, C).

        With ``cache``, the new keys and values are stored at ``[cache_start, cache_start + L)`` and the L
        queries attend to every cached position up to their own block (no mask: the caller feeds whole
        blocks).
        """
        b, n, c = x.shape
        q, k, v = self.project_qkv(x)
        scale = 1.0 if self.qk_norm else None
        if cache is not None:
            k, v = cache.write(k, v, cache_start)
            if (n <= SMALL_QUERY_ROWS and attn_mask is None and not is_causal and q.device.type == 'cpu'
                    and q.dtype in (torch.bfloat16, torch.float16)):
                out = small_query_attention(q, k, v, scale or self.head_dim ** -0.5)
                return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                             dropout_p=self.attn_drop if self.training else 0.0, scale=scale)
        out = out.transpose(1, 2).reshape(b, n, c)  # (B, L, C)
        return self.proj_drop(self.proj(out))
