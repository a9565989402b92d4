"""Attention-mask builders (ATTN_MASKS): boolean masks, True = may attend, for scaled_dot_product_attention.

Three layouts of one sequence ``[context; latents]``:

* ``'encoder'``: ``[image tokens (+cls); latent tokens]``. Latent i sees every context token and the latents
  its pattern allows. Context tokens see the context, and the latents only if ``context_sees_latents``.
* ``'decoder'``: ``[mask tokens (+cls); latent prefix]``. As the encoder, except that context (mask) tokens
  always see the present latents: the image is read out at the mask tokens.
* ``'sequence'``: a generator's own sequence; the optional context (e.g. condition tokens) is a prefix every
  token sees and that sees only itself.

A per-sample prefix length ``k_b`` marks latents ``j >= k_b`` (0-based) absent: no token attends to them, and
an absent latent attends only to itself, so that no softmax row is empty (an empty row gives NaN). Samples in
one batch may use different prefix lengths.
"""
from abc import ABC, abstractmethod
from typing import Dict, Optional, Tuple, Union

import torch

from mmspectral.registry import ATTN_MASKS
from mmspectral.utils.checks import check_range

try:  # torch >= 2.5
    from torch.nn.attention.flex_attention import create_block_mask
except ImportError:  # pragma: no cover
    create_block_mask = None

__all__ = ['BaseAttnMask', 'BidirectionalMask', 'SpectralCausalMask', 'BlockCausalMask']

LAYOUTS = ('encoder', 'decoder', 'sequence')


class BaseAttnMask(ABC):
    """Shared machinery of the mask builders: layouts, presence of latents, caching.

    Args:
        block_size: latents form groups of this many consecutive tokens (used by the causal patterns).
        context_sees_latents: whether context tokens may attend to latents in the ``'encoder'`` layout.
            None takes the class default.
    """

    default_context_sees_latents = False

    def __init__(self, block_size: int = 1, context_sees_latents: Optional[bool] = None) -> None:
        if int(block_size) != block_size or block_size < 1:
            raise ValueError(f'{type(self).__name__}: block_size must be a positive int, got {block_size!r}.')
        self.block_size = int(block_size)
        self.context_sees_latents = (self.default_context_sees_latents
                                     if context_sees_latents is None else bool(context_sees_latents))
        self._cache: Dict[Tuple, Tuple[torch.Tensor, bool]] = {}

    @abstractmethod
    def latent_pattern(self, num_latents: int, device: Union[str, torch.device, None] = None) -> torch.Tensor:
        """``(N, N)`` bool: may latent i attend to latent j (all latents present)."""

    @property
    def is_plain_causal(self) -> bool:
        """True when the latent pattern is the ordinary causal one
        (SDPA's ``is_causal`` can replace the mask)."""
        return False

    def base_mask(self, num_latents: int, num_context: int = 0, layout: str = 'encoder',
                  device: Union[str, torch.device, None] = None) -> torch.Tensor:
        """``(L, L)`` bool mask with every latent present; cached per (layout, sizes, device).
        Do not modify."""
        return self._entry(num_latents, num_context, layout, device)[0]

    def _entry(self, num_latents: int, num_context: int, layout: str,
               device: Union[str, torch.device, None]) -> Tuple[torch.Tensor, bool]:
        """The cached base mask and whether it is all True."""
        if layout not in LAYOUTS:
            raise ValueError(f'Unknown mask layout {layout!r}; expected one of {LAYOUTS}.')
        device = torch.device(device) if device is not None else torch.device('cpu')
        key = (layout, int(num_context), int(num_latents), device)
        entry = self._cache.get(key)
        if entry is None:
            p, n = num_context, num_latents
            mask = torch.zeros(p + n, p + n, dtype=torch.bool, device=device)
            mask[:p, :p] = True
            mask[p:, :p] = True
            mask[p:, p:] = self.latent_pattern(n, device)
            if layout == 'decoder' or (layout == 'encoder' and self.context_sees_latents):
                mask[:p, p:] = True
            if len(self._cache) >= 32:
                self._cache.pop(next(iter(self._cache)))
            entry = self._cache[key] = (mask, bool(mask.all()))
        return entry

    def sdpa_mask(self, num_latents: int, num_context: int = 0, layout: str = 'encoder',
                  prefix_lengths: Optional[torch.Tensor] = None,
                  device: Union[str, torch.device, None] = None) -> Optional[torch.Tensor]:
        """As calling the builder, but None where every token may attend to every other token, so that
        ``scaled_dot_product_attention`` can use its fastest (mask-free) kernels."""
        if prefix_lengths is None:
            mask, full = self._entry(num_latents, num_context, layout, device)
            return None if full else mask
        return self(num_latents, num_context, layout, prefix_lengths, device)

    def flex_block_mask(self, num_latents: int, num_context: int = 0, layout: str = 'encoder',
                        device: Union[str, torch.device, None] = None):
        """The base mask as a ``torch.nn.attention.flex_attention`` BlockMask (all latents present), for
        ``flex_attention(q, k, v, block_mask=...)``: fully masked blocks are skipped instead of computed."""
        if create_block_mask is None:
            raise RuntimeError(f'flex_attention needs torch >= 2.5; this is torch {torch.__version__}.')
        mask = self.base_mask(num_latents, num_context, layout, device)
        length = mask.shape[0]

        def mask_mod(b, h, q_idx, kv_idx):
            return mask[q_idx, kv_idx]

        return create_block_mask(mask_mod, None, None, length, length, device=mask.device)

    def __call__(self, num_latents: int, num_context: int = 0, layout: str = 'encoder',
                 prefix_lengths: Optional[torch.Tensor] = None,
                 device: Union[str, torch.device, None] = None) -> torch.Tensor:
        """Build the mask.

        Args:
            num_latents: N, latent slots in the sequence (present or not).
            num_context: tokens before the latents (image or mask tokens, plus a class token if any).
            layout: ``'encoder'``, ``'decoder'`` or ``'sequence'``.
            prefix_lengths: optional ``(B,)`` ints in ``[0, N]``: how many latents each sample holds.
            device: where to build it (defaults to ``prefix_lengths``' device, else CPU).

        Returns:
            ``(L, L)`` without ``prefix_lengths``; ``(B, 1, L, L)`` with it (broadcast over heads).
        """
        if device is None and prefix_lengths is not None:
            device = prefix_lengths.device
        mask = self.base_mask(num_latents, num_context, layout, device)
        if prefix_lengths is None:
            return mask
        k = torch.as_tensor(prefix_lengths, device=mask.device).long()
        if k.dim() != 1:
            raise ValueError(f'prefix_lengths must have shape (B,), got {tuple(k.shape)}.')
        check_range(k, 0, num_latents, f'prefix_lengths must lie in [0, {num_latents}]')
        pos = torch.arange(num_context + num_latents, device=mask.device)
        present = pos[None, :] < (num_context + k)[:, None]  # (B, L)
        out = mask[None] & present[:, None, :]  # (B, L, L): nobody attends to absent latents
        eye = torch.eye(pos.numel(), dtype=torch.bool, device=mask.device)
        out = torch.where(present[:, :, None], out, eye[None])  # absent rows attend to themselves only
        return out[:, None]

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(block_size={self.block_size}, '
                f'context_sees_latents={self.context_sees_latents})')


@ATTN_MASKS.register_module()
class BidirectionalMask(BaseAttnMask):
    """TiTok's attention: every token sees every present token.

    ``block_size`` is accepted so that configs can switch between mask types by ``type=`` alone; it has no
    effect here.
    """

    default_context_sees_latents = True

    def latent_pattern(self, num_latents: int, device=None) -> torch.Tensor:
        return torch.ones(num_latents, num_latents, dtype=torch.bool, device=device)


@ATTN_MASKS.register_module()
class SpectralCausalMask(BaseAttnMask):
    """SpectralAR's spectral causal mask: latent i sees latents j <= i (lower frequencies) and the context.

    In the encoder, image-side tokens see only image-side tokens by default, so nothing can carry a later
    (higher-frequency) latent back into an earlier one; ``context_sees_latents=True`` gives the variant drawn
    in the paper's figure, which lets information flow from latent j to latent i < j through the image tokens
    after two layers (docs/design.md). With ``block_size=p``, latents see whole groups of p (block causal).
    """

    default_context_sees_latents = False

    @property
    def is_plain_causal(self) -> bool:
        return self.block_size == 1

    def latent_pattern(self, num_latents: int, device=None) -> torch.Tensor:
        group = torch.arange(num_latents, device=device) // self.block_size
        return group[None, :] <= group[:, None]


@ATTN_MASKS.register_module()
class BlockCausalMask(SpectralCausalMask):
    """Causal over groups of ``block_size`` tokens: a token sees its own group and every earlier one.

    The mask of the generator's parallel variant ``-p{p}``, which predicts p consecutive tokens a step.
    """

    def __init__(self, block_size: int = 4, context_sees_latents: Optional[bool] = None) -> None:
        super().__init__(block_size=block_size, context_sees_latents=context_sees_latents)
