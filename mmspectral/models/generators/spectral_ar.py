"""``SpectralARGenerator``: VAR's class-conditional GPT over a 1D sequence of spectral tokens (GENERATORS).

The input sequence is ``[start group; s_1 .. s_{N-p}]`` and position i predicts token ``s_{i+1}``: with group
size p = 1 every step predicts one token (SpectralAR-d16); with p > 1 (``BlockCausalMask(block_size=p)``, the
``-p{p}`` variants) a step predicts the next p tokens at once, attending within its group and to every earlier
group. The start group is the class embedding plus learned start positions; the class embedding also drives
every block's adaptive LayerNorm. Width 64 * depth, heads = depth, as VAR; ``depth`` is the one scaling knob.
"""
import math
from contextlib import nullcontext
from typing import Callable, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn

from mmspectral.registry import ATTN_MASKS, GENERATORS
from mmspectral.utils import build_component
from mmspectral.utils.checks import check_range
from ..layers import AdaLNBlock, StaticKVCache
from ..layers.packed_linear import PackedWeightCache, packed_linears
from ..masks import BaseAttnMask, SpectralCausalMask
from .sampling import DEFAULT_CFG_SCALE, cfg_weight, check_sampling_options, guide, make_rng, sample_tokens

#: VAR's depth presets, with the AdaLN gamma initialisation its training commands use.
PRESETS = {'d16': dict(depth=16, init_adaln_gamma=1e-3), 'd20': dict(depth=20, init_adaln_gamma=1e-3),
           'd24': dict(depth=24, init_adaln_gamma=1e-4), 'd30': dict(depth=30, init_adaln_gamma=1e-5)}


class AdaLNBeforeHead(nn.Module):
    """``ln(x) * (1 + scale) + shift`` with (scale, shift) from the condition."""

    def __init__(self, dim: int, cond_dim: int, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * dim))

    def modulation(self, cond: torch.Tensor):
        """cond (B, D) -> (1 + scale, shift), each (B, 1, C)."""
        scale, shift = self.ada_lin(cond).view(-1, 1, 2, self.dim).unbind(2)
        return 1 + scale, shift

    def forward(self, x: torch.Tensor, modulation) -> torch.Tensor:
        scale1p, shift = modulation
        return torch.addcmul(shift, self.norm(x), scale1p)


@GENERATORS.register_module()
class SpectralARGenerator(nn.Module):
    """A VAR-style autoregressive transformer over N tokens of a 1D tokenizer.

    Args:
        depth: number of blocks; width = 64 * depth and heads = depth unless given.
        vocab_size: the tokenizer's codebook size.
        num_tokens: N, the sequence length.
        num_classes: class labels; index ``num_classes`` is the null class used for guidance.
        attn_mask: an ATTN_MASKS config. ``SpectralCausalMask`` (default) predicts one token a step through
            SDPA's ``is_causal`` (no mask tensor); ``BlockCausalMask(block_size=p)`` predicts p tokens a step.
        width, num_heads: override 64 * depth and depth.
        mlp_ratio: MLP hidden width relative to the width (4).
        drop_path_rate: largest stochastic-depth rate, reached by the last block; default 0.1 * depth / 24.
        cond_drop_rate: share of training labels replaced by the null class (classifier-free guidance).
        norm_eps: LayerNorm epsilon (1e-6).
        init_std: std of the truncated-normal initialisation; default sqrt(1 / (3 * width)) as VAR.
        init_head: extra factor on the output head's initial weights (0.02).
        init_adaln: factor on the initial AdaLN scale / shift weights (0.5).
        init_adaln_gamma: factor on the initial AdaLN gamma weights (VAR: 1e-3 at d16 / d20, 1e-4 at d24, 1e-5
            at d30), so every residual branch starts close to zero.
    """

    def __init__(self, depth: int = 16, vocab_size: int = 4096, num_tokens: int = 64, num_classes: int = 1000,
                 attn_mask: Union[dict, BaseAttnMask, None] = None, width: Optional[int] = None,
                 num_heads: Optional[int] = None, mlp_ratio: float = 4.0,
                 drop_path_rate: Optional[float] = None, cond_drop_rate: float = 0.1, norm_eps: float = 1e-6,
                 init_std: Optional[float] = None, init_head: float = 0.02, init_adaln: float = 0.5,
                 init_adaln_gamma: float = 1e-3) -> None:
        super().__init__()
        self.depth = depth
        self.width = width or 64 * depth
        self.num_heads = num_heads or depth
        self.vocab_size = vocab_size
        self.num_tokens = num_tokens
        self.num_classes = num_classes
        self.cond_drop_rate = cond_drop_rate
        self.attn_mask = build_component(attn_mask or dict(type='SpectralCausalMask'), ATTN_MASKS,
                                         expected_type=BaseAttnMask)
        self.block_size = self.attn_mask.block_size
        if not isinstance(self.attn_mask, SpectralCausalMask):
            raise ValueError(f'The generator needs a causal mask (SpectralCausalMask or BlockCausalMask), '
                             f'got {type(self.attn_mask).__name__}: a bidirectional one would let '
                             'position i see the token it predicts.')
        if num_tokens % self.block_size:
            raise ValueError(f'num_tokens={num_tokens} is not divisible by the mask '
                             f'block_size={self.block_size}.')
        self.num_steps = num_tokens // self.block_size
        c, p = self.width, self.block_size
        drop_path_rate = 0.1 * depth / 24 if drop_path_rate is None else drop_path_rate

        self.word_embed = nn.Embedding(vocab_size, c)
        self.class_emb = nn.Embedding(num_classes + 1, c)
        self.pos_start = nn.Parameter(torch.empty(1, p, c))
        self.pos_1LC = nn.Parameter(torch.empty(1, num_tokens, c))
        self.lvl_embed = nn.Embedding(self.num_steps, c)  # which step (group) a position belongs to
        self.register_buffer('lvl_1L', torch.arange(num_tokens) // p, persistent=False)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(AdaLNBlock(c, self.num_heads, cond_dim=c, mlp_ratio=mlp_ratio,
                                               drop_path=r, norm_eps=norm_eps) for r in rates)
        self.head_nm = AdaLNBeforeHead(c, c, norm_eps)
        self.head = nn.Linear(c, vocab_size)
        self._init_weights(init_std or math.sqrt(1 / (3 * c)), init_head, init_adaln, init_adaln_gamma)
        self._packed_weights = PackedWeightCache()  # oneDNN-packed copies for CPU sampling (packed_linear.py)

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> 'SpectralARGenerator':
        """'d16', 'd20', 'd24' or 'd30' (VAR's sizes: 310M / 600M / 1.0B / 2.0B parameters at 4096 codes)."""
        if name not in PRESETS:
            raise ValueError(f'Unknown preset {name!r}; use one of {sorted(PRESETS)}.')
        return cls(**{**PRESETS[name], **kwargs})

    @torch.no_grad()
    def _init_weights(self, std: float, init_head: float, init_adaln: float, init_adaln_gamma: float) -> None:
        # VAR's initialisation: truncated normal everywhere, zero biases, small output head, residual
        # projections scaled by 1 / sqrt(2 depth), AdaLN gammas almost zero.
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=std)
                if getattr(module, 'bias', None) is not None:
                    nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.pos_start, std=std)
        nn.init.trunc_normal_(self.pos_1LC, std=std)
        self.head.weight.mul_(init_head)
        self.head_nm.ada_lin[-1].weight.mul_(init_adaln)
        c = self.width
        for block in self.blocks:
            block.attn.proj.weight.div_(math.sqrt(2 * self.depth))
            block.ffn.fc2.weight.div_(math.sqrt(2 * self.depth))
            block.ada_lin[-1].weight[2 * c:].mul_(init_adaln)
            block.ada_lin[-1].weight[:2 * c].mul_(init_adaln_gamma)

    # ------------------------------------------------------------------ training
    def condition(self, labels: torch.Tensor, drop: bool = False) -> torch.Tensor:
        """Class embeddings (B, C); with ``drop``, a ``cond_drop_rate`` share of labels
        becomes the null class."""
        check_range(labels, 0, self.num_classes,
                    f'Class labels must lie in [0, {self.num_classes}] ({self.num_classes} = null)')
        if drop and self.cond_drop_rate > 0:
            dropped = torch.rand(labels.shape, device=labels.device) < self.cond_drop_rate
            labels = torch.where(dropped, torch.full_like(labels, self.num_classes), labels)
        return self.class_emb(labels)

    def embed(self, tokens: Optional[torch.Tensor], cond: torch.Tensor, start: int,
              length: int) -> torch.Tensor:
        """Inputs of positions ``[start, start + length)``: the start group, then embeddings of the tokens
        that precede each position. ``tokens`` (B, >= start + length - p) are the ids fed in."""
        p = self.block_size
        parts = []
        if start < p:
            parts.append((cond[:, None] + self.pos_start)[:, start:min(p, start + length)])
        first = max(start, p)
        if start + length > first:
            parts.append(self.word_embed(tokens[:, first - p:start + length - p]))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        lvl = self.lvl_1L[start:start + length]
        return x + self.pos_1LC[:, start:start + length] + self.lvl_embed(lvl)

    def run_blocks(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None, modulations=None,
                   caches: Optional[Sequence[StaticKVCache]] = None, cache_start: int = 0) -> torch.Tensor:
        """Blocks and head over ``x`` (B, L, C) -> logits (B, L, V) in float32."""
        if modulations is None:
            modulations = self.modulations(cond)
        mask, is_causal = None, False
        if caches is None:
            if self.attn_mask.is_plain_causal:
                is_causal = int(x.shape[1]) > 1  # a Python bool also when traced (FLOP counting)
            else:
                mask = self.attn_mask(x.shape[1], 0, layout='sequence', device=x.device)
        for i, block in enumerate(self.blocks):
            x = block(x, modulation=modulations[i], attn_mask=mask, is_causal=is_causal,
                      cache=caches[i] if caches is not None else None, cache_start=cache_start)
        return self.head(self.head_nm(x, modulations[-1])).float()

    def modulations(self, cond: torch.Tensor):
        """Every block's AdaLN vectors and the head's, from the condition (computed once per image)."""
        return [block.modulation(cond) for block in self.blocks] + [self.head_nm.modulation(cond)]

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tokens (B, N), labels (B,) -> logits (B, N, V); position i predicts
        ``tokens[:, i]``."""
        if tokens.dim() != 2 or tokens.shape[1] != self.num_tokens:
            raise ValueError(f'The generator takes token ids (B, {self.num_tokens}), '
                             f'got {tuple(tokens.shape)}.')
        cond = self.condition(labels, drop=self.training)
        x = self.embed(tokens, cond, 0, self.num_tokens)
        return self.run_blocks(x, cond)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(self, labels: torch.Tensor, cfg_scale: float = DEFAULT_CFG_SCALE,
                 cfg_schedule: str = 'linear', top_k: int = 0, top_p: float = 0.0, temperature: float = 1.0,
                 rng: Optional[torch.Generator] = None, num_tokens: Optional[int] = None,
                 use_cache: bool = True, prefix: Optional[torch.Tensor] = None,
                 callback: Optional[Callable[[int, torch.Tensor], None]] = None,
                 return_logits: bool = False,
                 choose: Optional[Callable[[int, torch.Tensor], torch.Tensor]] = None
                 ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        """Sample token sequences for ``labels`` (B,): the plain sampler. ``GeneratorModel.sample`` is the
        surface tools and applications call: it adds the config's defaults, a seed, decoding and the CPU's
        packed weights (:meth:`packed`).

        Args:
            cfg_scale: guidance weight t in ``(1 + t) cond - t uncond`` (0: no guidance, no doubled batch).
            cfg_schedule: 'linear' (VAR: t ramps from 0 to ``cfg_scale`` over the steps) or 'constant'.
            top_k, top_p, temperature: sampling filters (0 disables top-k / top-p).
            rng: a ``torch.Generator`` (``make_rng(seed)``); None uses the global RNG.
            num_tokens: stop after this many tokens (truncated generation: exactly the first ``num_tokens`` of
                the full generation for the same seed and settings); default N.
            use_cache: a preallocated KV cache (one step per group) or a full forward pass per step.
            prefix: (B, k) token ids to keep; generation continues after them (spectral variations).
            callback: called as ``callback(step, tokens_so_far)`` after every step (coarse-to-fine previews).
            return_logits: also return the guided logits of every position (B, n, V).
            choose: pick each step's tokens instead of sampling them: ``choose(step, logits)`` gets the
                guided logits (B, p, V) of the step and returns its ids (B, p). The progressive codec
                (``mmspectral.codec``) feeds known tokens this way when it encodes and decoded ones when it
                decodes, so both sides compute their probabilities by this one path.

        Returns:
            token ids (B, n), or a dict with ``tokens`` and ``logits``.
        """
        check_sampling_options(dict(cfg_scale=cfg_scale, cfg_schedule=cfg_schedule, top_k=top_k, top_p=top_p,
                                    temperature=temperature, num_tokens=num_tokens), self.num_tokens,
                               where='generate')  # before the first step: a bad setting costs no work
        n = self.num_tokens if num_tokens is None else int(num_tokens)
        p, b, device = self.block_size, labels.shape[0], labels.device
        # A truncated generation is the full one stopped early: the guidance ramp runs over all N / p steps
        # and every step draws the same random numbers, so its tokens are the first n of the full run
        # (Table 3).
        steps = -(-n // p)
        guided = cfg_scale != 0
        cond_labels = torch.cat([labels, torch.full_like(labels, self.num_classes)]) if guided else labels
        cond = self.condition(cond_labels)
        modulations = self.modulations(cond)
        tokens = torch.zeros(b, self.num_tokens, dtype=torch.long, device=device)
        kept = 0
        if prefix is not None:
            if prefix.dim() != 2 or prefix.shape[0] != b or prefix.shape[1] > self.num_tokens:
                raise ValueError(f'prefix must be token ids (B={b}, k <= {self.num_tokens}), got '
                                 f'{tuple(prefix.shape)}.')
            kept = prefix.shape[1]
            tokens[:, :kept] = prefix
        caches = None
        if use_cache:
            dtype = self.pos_1LC.dtype if not torch.is_autocast_enabled(device.type) else \
                torch.get_autocast_dtype(device.type)
            caches = [StaticKVCache(cond.shape[0], self.num_heads, steps * p, self.width // self.num_heads,
                                    dtype, device) for _ in self.blocks]
        all_logits = []
        for step in range(steps):
            start = step * p
            fed = tokens.repeat(2, 1) if guided else tokens
            if use_cache:
                x = self.embed(fed, cond, start, p)
                logits = self.run_blocks(x, modulations=modulations, caches=caches, cache_start=start)
            else:
                x = self.embed(fed, cond, 0, start + p)
                logits = self.run_blocks(x, modulations=modulations)[:, start:]
            if guided:
                logits = guide(logits, cfg_weight(cfg_scale, cfg_schedule, step, self.num_steps))
            new = sample_tokens(logits, top_k, top_p, temperature, rng) if choose is None \
                else choose(step, logits)  # (B, p)
            keep = torch.arange(start, start + p, device=device) < kept
            tokens[:, start:start + p] = torch.where(keep, tokens[:, start:start + p], new)
            if return_logits:
                all_logits.append(logits)
            if callback is not None:
                callback(step, tokens[:, :min(start + p, n)])
        tokens = tokens[:, :n]
        if return_logits:
            return dict(tokens=tokens, logits=torch.cat(all_logits, dim=1)[:, :n])
        return tokens

    def packed(self, batch_size: int, cfg_scale: float = DEFAULT_CFG_SCALE):
        """A context in which the linear layers run with oneDNN-packed weights (CPU, fp32 or native bf16:
        about twice as fast for the few rows of a cached step; elsewhere nothing changes), sized for sampling
        ``batch_size`` labels at ``cfg_scale``. The packed copies are kept until
        :meth:`release_packed_weights` and follow in-place weight changes."""
        rows = batch_size * (2 if cfg_scale != 0 else 1) * self.block_size  # rows of a cached step
        return packed_linears(self, self._packed_weights, rows)

    def release_packed_weights(self) -> None:
        """Free the packed weight copies that CPU sampling keeps."""
        self._packed_weights.clear()


def generate_tokens(gen: SpectralARGenerator, labels: torch.Tensor, *, seed: Optional[int] = None,
                    rng: Optional[torch.Generator] = None, pack_weights: bool = True, **kwargs):
    """``gen.generate(labels, **kwargs)`` as every sampling path runs it: with the RNG of ``seed`` (unless
    ``rng`` is given; :func:`~.sampling.make_rng`) and, with ``pack_weights``, inside :meth:`~.packed` (CPU:
    the same tokens, about twice as fast for small batches). ``GeneratorModel.sample`` calls this after
    merging the config's defaults; benchmarks of a bare generator call it directly."""
    if rng is None:
        rng = make_rng(seed)
    with gen.packed(labels.shape[0], kwargs.get('cfg_scale', DEFAULT_CFG_SCALE)) if pack_weights \
            else nullcontext():
        return gen.generate(labels, rng=rng, **kwargs)
