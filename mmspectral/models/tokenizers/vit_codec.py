"""The ViT encoder and decoder of a TiTok-style 1D tokenizer.

Both run one transformer over ``[context; latents]``: the encoder's context is ``[cls; image patches]`` and
its latents are N learned query tokens; the decoder's context is ``[cls; mask tokens]`` (one per image patch)
and its latents are the quantised tokens of a prefix. Which token may attend to which is decided by an
ATTN_MASKS builder (``BidirectionalMask`` for TiTok, ``SpectralCausalMask`` for SpectralAR). Parameter names
follow TiTok's so that official checkpoints convert by renaming
(tools/model_converters/titok_to_mmspectral.py).
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..layers import TransformerBlock
from ..masks import BaseAttnMask


def _embedding(*shape: int, width: int) -> nn.Parameter:
    # TiTok's initialisation of every learned embedding: N(0, width^-1).
    return nn.Parameter(width ** -0.5 * torch.randn(*shape))


class _ViTTrunk(nn.Module):
    """ln_pre -> blocks -> (caller picks outputs) shared by encoder and decoder."""

    def __init__(self, width: int, depth: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]  # stochastic depth grows with depth
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleList(
            TransformerBlock(width, num_heads, mlp_ratio=mlp_ratio, drop_path=rate) for rate in rates)
        self.ln_post = nn.LayerNorm(width)

    def run(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.ln_pre(x)
        for block in self.transformer:
            x = block(x, attn_mask=mask)
        return x


class ViTTokenEncoder(_ViTTrunk):
    """Image -> N continuous latent tokens.

    Args:
        image_size, patch_size: the image side and the patch side (pixels); the image must divide into
            patches.
        width, depth, num_heads, mlp_ratio, drop_path: the ViT.
        num_tokens: N, number of latent tokens.
        token_size: D, the dimension a token is projected to before quantisation.
        legacy_token_projection: reproduce the official TiTok checkpoints' projection, which reinterprets the
            (B, N, C) latents as (B, C, N) without a permute and so mixes every token into every output token.
            Only for converted official weights; it makes the encoder non-causal.
    """

    def __init__(self, image_size: int, patch_size: int, width: int, depth: int, num_heads: int,
                 num_tokens: int, token_size: int, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 legacy_token_projection: bool = False) -> None:
        super().__init__(width, depth, num_heads, mlp_ratio, drop_path)
        self.grid = image_size // patch_size
        self.num_tokens = num_tokens
        self.legacy_token_projection = legacy_token_projection
        self.patch_embed = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        self.class_embedding = _embedding(1, width, width=width)
        self.positional_embedding = _embedding(self.grid ** 2 + 1, width, width=width)
        self.latent_token_positional_embedding = _embedding(num_tokens, width, width=width)
        self.token_proj = nn.Linear(width, token_size)

    @property
    def num_context(self) -> int:
        return self.grid ** 2 + 1

    def forward(self, images: torch.Tensor, latent_tokens: torch.Tensor, attn_mask: BaseAttnMask,
                num_tokens: Optional[int] = None) -> torch.Tensor:
        """images (B, 3, H, W); latent_tokens (N, C); returns the first ``num_tokens`` latents (B, k, D)."""
        k = self.num_tokens if num_tokens is None else num_tokens
        if self.legacy_token_projection and k != self.num_tokens:
            raise ValueError('The legacy token projection mixes all tokens; encode all N and slice instead.')
        b = images.shape[0]
        # The strided patch convolution as one matmul over flattened patches: the same numbers, several times
        # faster to differentiate on CPU than the convolution kernels; the Conv2d keeps the checkpoint layout.
        p = self.patch_embed.kernel_size[0]
        patches = rearrange(images, 'b c (h p1) (w p2) -> b (h w) (c p1 p2)', p1=p, p2=p)
        x = F.linear(patches, self.patch_embed.weight.flatten(1), self.patch_embed.bias)  # (B, h*w, C)
        x = (torch.cat([self.class_embedding.expand(b, -1, -1).to(x.dtype), x], dim=1)
             + self.positional_embedding)
        latents = (latent_tokens[:k] + self.latent_token_positional_embedding[:k]).to(x.dtype)
        x = torch.cat([x, latents.expand(b, -1, -1)], dim=1)  # (B, 1 + h*w + k, C)
        mask = attn_mask.sdpa_mask(k, self.num_context, layout='encoder', device=x.device)
        x = self.ln_post(self.run(x, mask)[:, self.num_context:])  # (B, k, C)
        if self.legacy_token_projection:
            x = x.reshape(b, x.shape[2], k).transpose(1, 2)
        return self.token_proj(x)  # (B, k, D)


class ConvPixelHead(nn.Module):
    """Patch features (B, C, h, w) -> pixels (B, 3, h p, w p) through 3x3 convolutions at rising resolution.

    A linear patch head gives each patch its pixels alone, so neighbouring patches meet at a seam; here every
    output pixel is computed from the features of the patches around it (log2(p) nearest-neighbour doublings,
    each followed by ``convs_per_stage`` 3x3 convolutions, halving the channels from ``channels`` down to
    ``min_channels``). With ``pixel_shuffle=s`` the last log2(s) doublings are replaced by one 3x3 convolution
    to ``3 s^2`` channels and a pixel shuffle: each s x s block of output pixels still comes from a 3x3
    neighbourhood of features, and the full-resolution convolutions, most of the head's cost on a CPU (about
    8x at 64 px, s = 2), are gone.
    """

    def __init__(self, width: int, patch_size: int, channels: int = 128, min_channels: int = 32,
                 convs_per_stage: int = 2, pixel_shuffle: int = 1) -> None:
        super().__init__()
        stages = int(math.log2(patch_size))
        if 2 ** stages != patch_size:
            raise ValueError(f"decoder_head='conv' needs a power-of-two patch_size, got {patch_size}.")
        if min(channels, min_channels, convs_per_stage) < 1:
            raise ValueError('conv_head: channels, min_channels and convs_per_stage must be at least 1, got '
                             f'{channels}, {min_channels}, {convs_per_stage}.')
        if pixel_shuffle < 1 or pixel_shuffle & (pixel_shuffle - 1) or pixel_shuffle > patch_size:
            raise ValueError(f'conv_head: pixel_shuffle must be a power of two from 1 to the patch size '
                             f'({patch_size}), got {pixel_shuffle}.')
        stages -= int(math.log2(pixel_shuffle))
        layers: list = [nn.Conv2d(width, channels, kernel_size=1)]
        c = channels
        for _ in range(stages):
            out = max(c // 2, min_channels)
            layers.append(nn.Upsample(scale_factor=2, mode='nearest'))
            for i in range(convs_per_stage):
                layers += [nn.Conv2d(c if i == 0 else out, out, 3, padding=1), nn.GELU()]
            c = out
        self.body = nn.Sequential(*layers)
        self.conv_out = nn.Conv2d(c, 3 * pixel_shuffle ** 2, kernel_size=3, padding=1)
        self.shuffle = nn.PixelShuffle(pixel_shuffle) if pixel_shuffle > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.shuffle(self.conv_out(self.body(x))).contiguous()  # (B, 3, H, W)


class ViTTokenDecoder(_ViTTrunk):
    """A prefix of quantised tokens -> pixels or proxy-code logits, read out at the mask tokens.

    Args:
        image_size, patch_size, width, depth, num_heads, mlp_ratio, drop_path: as the encoder.
        num_tokens: N, the most tokens the decoder takes.
        token_size: D of the quantised tokens.
        head: 'pixels' (a linear patch head plus a 3x3 conv, giving images), 'conv' (images from
            :class:`ConvPixelHead`: no per-patch map, so no patch seams) or 'proxy_codes' (TiTok's stage-1
            head: logits over the ``proxy_codebook_size`` codes of a VQGAN teacher, one grid cell per patch).
        proxy_codebook_size: size of the teacher's codebook for the 'proxy_codes' head.
        conv_head: keyword arguments of :class:`ConvPixelHead` for the 'conv' head.
    """

    def __init__(self, image_size: int, patch_size: int, width: int, depth: int, num_heads: int,
                 num_tokens: int, token_size: int, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 head: str = 'pixels', proxy_codebook_size: int = 1024,
                 conv_head: Optional[dict] = None) -> None:
        super().__init__(width, depth, num_heads, mlp_ratio, drop_path)
        if head not in ('pixels', 'conv', 'proxy_codes'):
            raise ValueError(f"decoder head must be 'pixels', 'conv' or 'proxy_codes', got {head!r}.")
        self.grid = image_size // patch_size
        self.patch_size = patch_size
        self.num_tokens = num_tokens
        self.head = head
        self.decoder_embed = nn.Linear(token_size, width)
        self.class_embedding = _embedding(1, width, width=width)
        self.positional_embedding = _embedding(self.grid ** 2 + 1, width, width=width)
        self.mask_token = _embedding(1, 1, width, width=width)
        self.latent_token_positional_embedding = _embedding(num_tokens, width, width=width)
        if head == 'pixels':
            self.pixel_head = nn.Linear(width, patch_size * patch_size * 3)
            self.conv_out = nn.Conv2d(3, 3, kernel_size=3, padding=1)
        elif head == 'conv':
            self.conv_head = ConvPixelHead(width, patch_size, **(conv_head or {}))
        else:
            self.ffn = nn.Sequential(nn.Linear(width, 2 * width), nn.Tanh(),
                                     nn.Linear(2 * width, proxy_codebook_size))

    @property
    def num_context(self) -> int:
        return self.grid ** 2 + 1

    def forward(self, tokens: torch.Tensor, attn_mask: BaseAttnMask,
                prefix_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """tokens (B, k, D), k <= N; with ``prefix_lengths`` (B,), sample b uses only its first k_b tokens.

        Returns images (B, 3, H, W) for the 'pixels' and 'conv' heads, logits (B, K, h, w) for 'proxy_codes'.
        """
        b, k, _ = tokens.shape
        if k > self.num_tokens:
            raise ValueError(f'The decoder takes at most {self.num_tokens} tokens, got {k}.')
        x = self.decoder_embed(tokens) + self.latent_token_positional_embedding[:k]  # (B, k, C)
        context = (torch.cat([self.class_embedding.expand(b, 1, -1),
                              self.mask_token.expand(b, self.grid ** 2, -1)], dim=1)
                   + self.positional_embedding)
        x = torch.cat([context.to(x.dtype), x], dim=1)  # (B, 1 + h*w + k, C)
        mask = attn_mask.sdpa_mask(k, self.num_context, layout='decoder', prefix_lengths=prefix_lengths,
                                   device=x.device)
        x = self.ln_post(self.run(x, mask)[:, 1:self.num_context])  # (B, h*w, C)
        if self.head == 'pixels':
            x = rearrange(self.pixel_head(x), 'b (h w) (p1 p2 c) -> b c (h p1) (w p2)', h=self.grid,
                          p1=self.patch_size, p2=self.patch_size)
            # Channels-last input: the 3-channel convolution's backward is ~5x faster on CPU, same numbers.
            return self.conv_out(x.contiguous(memory_format=torch.channels_last)).contiguous()  # (B, 3, H, W)
        if self.head == 'conv':
            return self.conv_head(rearrange(x, 'b (h w) c -> b c h w', h=self.grid))  # (B, 3, H, W)
        return rearrange(self.ffn(x), 'b (h w) k -> b k h w', h=self.grid)  # (B, K, h, w)
