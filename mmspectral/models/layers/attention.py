"""The one attention layer of mmspectral, on ``torch.nn.functional.scaled_dot_product_attention``."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection.

    The fused ``qkv`` weight stacks the q, k and v projections row-wise, the layout of
    ``nn.MultiheadAttention.in_proj_weight``, so such weights load without reshuffling.

    Args:
        dim: model width C.
        num_heads: heads; ``dim`` must be divisible by it.
        qkv_bias: biases on the q, k and v projections.
        attn_drop: dropout on attention weights (training only).
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'Attention width {dim} is not divisible by num_heads={num_heads}.')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False) -> torch.Tensor:
        """x: (B, L, C); attn_mask: bool (L, L) or (B, 1, L, L), True = may attend. Returns (B, L, C)."""
        b, n, c = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, L, D)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                             dropout_p=self.attn_drop if self.training else 0.0)
        out = out.transpose(1, 2).reshape(b, n, c)  # (B, L, C)
        return self.proj_drop(self.proj(out))
