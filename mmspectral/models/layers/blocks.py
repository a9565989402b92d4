"""Transformer blocks: pre-LayerNorm (ViT / TiTok) and AdaLN-modulated (VAR)."""
import weakref
from functools import partial
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from timm.layers import DropPath, Mlp

from mmspectral.registry import FUNCTIONS
from .attention import Attention, StaticKVCache


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


class AdaLNBlock(nn.Module):
    """VAR's block: both sub-layers modulated by the condition through adaptive LayerNorm.

    ``ada_lin(cond)`` gives six vectors (gamma1, gamma2, scale1, scale2, shift1, shift2) and the block
    computes ``x + gamma1 * attn(ln(x) * (1 + scale1) + shift1)``, then the same with the MLP. Each
    multiply-add runs as one ``addcmul`` (one kernel, one rounding) and ``1 + scale`` is part of the
    modulation, which a sampler computes once per image: a cached sampling step is bound by the number of
    small operations as much as by its matmuls (docs/results.md). LayerNorms have
    no parameters; attention l2-normalises q and k with a learnable per-head logit scale and has q / v biases
    only; the MLP uses tanh-GELU.

    Args:
        dim: width C.
        num_heads: attention heads.
        cond_dim: width of the condition (default C).
        mlp_ratio: MLP hidden width relative to C.
        drop_path: stochastic-depth rate.
        norm_eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, num_heads: int, cond_dim: Optional[int] = None, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim or dim, 6 * dim))
        self.norm = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=False)
        self.attn = Attention(dim, num_heads, qkv_bias=True, k_bias=False, qk_norm=True)
        self.ffn = Mlp(dim, hidden_features=round(dim * mlp_ratio),
                       act_layer=partial(nn.GELU, approximate='tanh'))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def modulation(self, cond: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """cond (B, D) -> six (B, 1, C) tensors: gamma1, gamma2, 1 + scale1, 1 + scale2, shift1, shift2.

        Depends on the condition only, so a sampler computes it once per image, not once per token.
        """
        gamma1, gamma2, scale1, scale2, shift1, shift2 = self.ada_lin(cond).view(-1, 1, 6, self.dim).unbind(2)
        return gamma1, gamma2, 1 + scale1, 1 + scale2, shift1, shift2

    def _residual(self, x: torch.Tensor, h: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        if self.training and not isinstance(self.drop_path, nn.Identity):
            return x + self.drop_path(h * gamma)
        return torch.addcmul(x, h, gamma)

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None,
                modulation: Optional[Tuple[torch.Tensor, ...]] = None,
                attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False,
                cache: Optional[StaticKVCache] = None, cache_start: int = 0):
        """x (B, L, C); either ``cond`` (B, D) or its precomputed ``modulation``."""
        gamma1, gamma2, scale1p, scale2p, shift1, shift2 = modulation if modulation is not None else \
            self.modulation(cond)
        h = self.attn(torch.addcmul(shift1, self.norm(x), scale1p), attn_mask=attn_mask, is_causal=is_causal,
                      cache=cache, cache_start=cache_start)
        x = self._residual(x, h, gamma1)
        return self._residual(x, self.ffn(torch.addcmul(shift2, self.norm(x), scale2p)), gamma2)


# Sub-layers chosen as FSDP units while FSDP walks the module tree (parents are visited before children).
_UNITS: 'weakref.WeakSet[nn.Module]' = weakref.WeakSet()


@FUNCTIONS.register_module()
def adaln_block_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int,
                            block_types: Sequence[str] = ('AdaLNBlock', )) -> bool:
    """FSDP auto-wrap policy: each parameterised child of every block of ``block_types`` is one FSDP unit.

    For an ``AdaLNBlock`` of width C these are ``ada_lin`` (6C^2 weights), ``attn`` (4C^2) and ``ffn`` (8C^2);
    what is left (embeddings, head) stays in the root unit. The block itself cannot be one: the
    generator computes every block's AdaLN modulation (``block.modulation(cond)``) before it runs the blocks,
    outside the block's ``forward``, where an FSDP unit's parameters are still sharded. Used by
    ``SpectralFSDPStrategy`` (``mmspectral.engine.fsdp_runner``).

    Args:
        module: the module FSDP asks about.
        recurse: True when FSDP asks whether to look inside ``module``; False when it asks whether to wrap it.
        nonwrapped_numel: parameters of ``module`` not yet in a unit (unused).
        block_types: class names of the blocks whose children are wrapped.
    """
    if recurse:
        if type(module).__name__ in block_types:
            _UNITS.update(child for child in module.children() if any(True for _ in child.parameters()))
        return True
    return module in _UNITS
