"""Pre-LayerNorm transformer block (ViT / TiTok style)."""
from typing import Optional

import torch
import torch.nn as nn
from timm.layers import DropPath, Mlp

from .attention import Attention


class TransformerBlock(nn.Module):
    """``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``, each branch with optional drop path.

    Args:
        dim: width C.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP relative to C.
        qkv_bias: biases on q, k, v.
        drop_path: stochastic-depth rate of this block.
        norm_eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.ln_2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, L, C); attn_mask as in :class:`Attention`."""
        x = x + self.drop_path(self.attn(self.ln_1(x), attn_mask=attn_mask))
        return x + self.drop_path(self.mlp(self.ln_2(x)))
