"""MaskGIT-VQGAN (f16, 1024 codes x 256 dims), as TiTok's two-stage recipe uses it.

* Stage 1: a frozen teacher. :meth:`MaskGITVQGAN.encode` turns images in [0, 1] into proxy codes (B, h*w) in
  row-major order, the targets of TiTok's cross-entropy.
* Stage 2: :meth:`MaskGITVQGAN.soft_decode` mixes the codebook with the softmax of TiTok's (B, 1024, h, w)
  logits and runs this decoder, which is the pixel path TiTok fine-tunes.

The modules are named so that the public ``maskgit-vqgan-imagenet-f16-256.bin`` (TiTok release, converted
from the JAX MaskGIT weights) loads with ``strict=True``. The weights depend on a few choices of its
architecture: TF "SAME" padding, bias-free residual convs, a residual shortcut applied to the block's
*output* (see :class:`ResnetBlock`), and no attention, ``quant_conv`` or ``post_quant_conv``. Nothing is ever
downloaded.
"""
import math
import os.path as osp
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmspectral.fileio import load_state_dict_checked, read_state_dict
from mmspectral.registry import MODELS
from ..utils import keep_out_of_checkpoints

__all__ = ['MaskGITVQGAN', 'Conv2dSame', 'ResnetBlock', 'NearestCodebook', 'PUBLIC_WEIGHTS']

PUBLIC_WEIGHTS = 'maskgit-vqgan-imagenet-f16-256.bin'
_HOW_TO_GET = (f'Download {PUBLIC_WEIGHTS} from the TiTok release (Hugging Face fun-research/TiTok) '
               f'yourself, put it e.g. at checkpoints/{PUBLIC_WEIGHTS}, and set '
               f"pretrained='checkpoints/{PUBLIC_WEIGHTS}' in the model config dict with "
               "type='MaskGITVQGAN'. mmspectral never downloads weights.")
_NORM_EPS = 1e-6  # flax GroupNorm's default in the JAX original, kept by the converted weights


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding: output size ``ceil(in / stride)``.

    The padding is computed per input size in forward; an odd total goes one more after than before (TF's
    rule), which matters for even kernels and strided convs. Stride 1 and odd ``k`` give symmetric
    ``k // 2``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=bias)

    def _same_pad(self, size: int, dim: int) -> int:
        k, s, d = self.kernel_size[dim], self.stride[dim], self.dilation[dim]
        out = -(-size // s)
        return max((out - 1) * s + (k - 1) * d + 1 - size, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))."""
        k, d = self.kernel_size, self.dilation
        if self.stride == (1, 1) and k[0] % 2 and k[1] % 2:
            # Symmetric padding: the convolution pads itself, with no padded copy of the input (the copy
            # took 8% of the pixel decoder's time on the CPU); the same numbers as padding first.
            return F.conv2d(x, self.weight, self.bias, 1, (d[0] * (k[0] // 2), d[1] * (k[1] // 2)), d,
                            self.groups)
        pad_h, pad_w = self._same_pad(x.shape[-2], 0), self._same_pad(x.shape[-1], 1)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with MaskGIT's residual.

    When ``in_channels != out_channels`` the 1x1 ``nin_shortcut`` (out -> out, no bias) is applied to the conv
    path's output ``h`` and the block returns ``h + nin_shortcut(h)``: the input is not carried across. This
    is how the JAX original is written, and the public weights' shapes ([out, out, 1, 1]) depend on it.
    Otherwise the block returns ``h + x``. Dropout is 0 in the released model and omitted.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        norm_groups: GroupNorm groups; must divide both channel counts.
    """

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int = 32) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_groups, in_channels, eps=_NORM_EPS)
        self.conv1 = Conv2dSame(in_channels, out_channels, 3, bias=False)
        self.norm2 = nn.GroupNorm(norm_groups, out_channels, eps=_NORM_EPS)
        self.conv2 = Conv2dSame(out_channels, out_channels, 3, bias=False)
        self.nin_shortcut = (Conv2dSame(out_channels, out_channels, 1, bias=False)
                             if in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, H, W) -> (B, C_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.nin_shortcut is not None:
            return h + self.nin_shortcut(h)
        return h + x


def _level(blocks: Sequence[nn.Module], upsample_channels: Optional[int] = None) -> nn.Module:
    """One resolution level: ``block.{j}`` and, in the decoder, ``upsample_conv`` (the weights' keys)."""
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    if upsample_channels is not None:
        level.upsample_conv = Conv2dSame(upsample_channels, upsample_channels, 3)
    return level


class Encoder(nn.Module):
    """(B, in_channels, H, W) -> (B, z_channels, H / 2^(L-1), W / 2^(L-1)), L = len(channel_mult)."""

    def __init__(self, in_channels: int, hidden_channels: int, channel_mult: Sequence[int],
                 num_res_blocks: int, z_channels: int, norm_groups: int) -> None:
        super().__init__()
        self.conv_in = Conv2dSame(in_channels, hidden_channels, 3, bias=False)
        in_mult = (1, ) + tuple(channel_mult)
        self.down = nn.ModuleList()
        for i, mult in enumerate(channel_mult):
            block_in, block_out = hidden_channels * in_mult[i], hidden_channels * mult
            blocks = [ResnetBlock(block_in if j == 0 else block_out, block_out, norm_groups)
                      for j in range(num_res_blocks)]
            self.down.append(_level(blocks))
        width = hidden_channels * channel_mult[-1]
        self.mid = nn.ModuleList(ResnetBlock(width, width, norm_groups) for _ in range(num_res_blocks))
        self.norm_out = nn.GroupNorm(norm_groups, width, eps=_NORM_EPS)
        self.conv_out = Conv2dSame(width, z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            for block in level.block:
                h = block(h)
            if i < len(self.down) - 1:  # no pooling after the last level
                h = F.avg_pool2d(h, kernel_size=2, stride=2)
        for block in self.mid:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """(B, z_channels, h, w) -> (B, out_channels, h * 2^(L-1), w * 2^(L-1)), L = len(channel_mult)."""

    def __init__(self, out_channels: int, hidden_channels: int, channel_mult: Sequence[int],
                 num_res_blocks: int, z_channels: int, norm_groups: int) -> None:
        super().__init__()
        block_in = hidden_channels * channel_mult[-1]
        self.conv_in = Conv2dSame(z_channels, block_in, 3)
        self.mid = nn.ModuleList(ResnetBlock(block_in, block_in, norm_groups) for _ in range(num_res_blocks))
        levels = []
        for i in reversed(range(len(channel_mult))):  # built from the coarsest level down
            block_out = hidden_channels * channel_mult[i]
            blocks = [ResnetBlock(block_in if j == 0 else block_out, block_out, norm_groups)
                      for j in range(num_res_blocks)]
            levels.append(_level(blocks, block_out if i > 0 else None))
            block_in = block_out
        # Stored finest first, so that up.{i} is level i (the weights' key order); forward walks it backwards.
        self.up = nn.ModuleList(reversed(levels))
        self.norm_out = nn.GroupNorm(norm_groups, block_in, eps=_NORM_EPS)
        self.conv_out = Conv2dSame(block_in, out_channels, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for i in reversed(range(len(self.up))):
            level = self.up[i]
            for block in level.block:
                h = block(h)
            if i > 0:
                h = level.upsample_conv(F.interpolate(h, scale_factor=2.0, mode='nearest'))
        return self.conv_out(F.silu(self.norm_out(h)))


class NearestCodebook(nn.Module):
    """Nearest code by plain squared Euclidean distance (no l2 normalisation), as the public model.

    Args:
        codebook_size: K.
        dim: code width D.
    """

    def __init__(self, codebook_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(codebook_size, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, D, h, w) -> indices (B, h, w), long."""
        b, d, h, w = z.shape
        # fp32 with autocast off: in fp16 / bf16 near-ties flip, so the codes would depend on the precision.
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = z.permute(0, 2, 3, 1).reshape(-1, d).float()  # (B*h*w, D), row-major positions
            codes = self.embedding.weight.float()  # (K, D)
            # (B*h*w, K) squared distances
            dist = flat.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1) - 2.0 * flat @ codes.t()
        return dist.argmin(dim=1).view(b, h, w)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """indices: (B, h, w) -> codes (B, D, h, w)."""
        return self.embedding(indices).permute(0, 3, 1, 2).contiguous()


@MODELS.register_module()
class MaskGITVQGAN(nn.Module):
    """MaskGIT's VQGAN: TiTok's proxy-code teacher (stage 1) and pixel decoder (stage 2).

    Images are in [0, 1] (B, in_channels, H, W), H and W divisible by ``2 ** (len(channel_mult) - 1)`` (16 for
    the public model: 256 px -> a 16x16 grid of codes). Decoded images are about [0, 1] and not clamped.

    Args:
        hidden_channels: width of the finest level.
        channel_mult: width multiplier per level; each level after the first halves the resolution.
        num_res_blocks: ResnetBlocks per level and in the middle stage.
        z_channels: code width D.
        codebook_size: number of codes K.
        in_channels: image channels (also the decoder's output channels).
        norm_groups: GroupNorm groups (32 in the public model); must divide every level's width.
        pretrained: local path of the weights, a plain state dict or ``{'state_dict': ...}``, loaded with
            ``weights_only=True``. The public file is ``maskgit-vqgan-imagenet-f16-256.bin``.
        allow_random_init: build without weights when ``pretrained`` is None. Off by default, because a
            teacher without its weights trains on noise without any error; turn it on only for tests or
            experiments that train this model themselves.
        frozen: call :meth:`freeze` after building (the stage-1 teacher).
        with_encoder: False builds the decoder and codebook only: the pixel decoder behind a TiTok
            proxy-code head (stage 2). The encoder's keys in the weights file are then skipped.
    """

    #: arguments that name a file, for the config checks (mmspectral/engine/component_checks.py)
    path_arguments = {'pretrained': 'It is maskgit-vqgan-imagenet-f16-256.bin (docs/faq.md).'}

    def __init__(self, hidden_channels: int = 128, channel_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 2, z_channels: int = 256, codebook_size: int = 1024,
                 in_channels: int = 3, norm_groups: int = 32, pretrained: Optional[str] = None,
                 allow_random_init: bool = False, frozen: bool = False, with_encoder: bool = True) -> None:
        super().__init__()
        self._frozen = False
        channel_mult = tuple(int(m) for m in channel_mult)
        widths = {hidden_channels * m for m in (1, ) + channel_mult}
        bad = sorted(c for c in widths if c % norm_groups)
        if bad:
            raise ValueError(f'MaskGITVQGAN: norm_groups={norm_groups} must divide every level width, but '
                             f'hidden_channels={hidden_channels} x channel_mult={channel_mult} gives {bad}. '
                             'Pick widths that are multiples of norm_groups, or change norm_groups.')
        self.arch = dict(hidden_channels=hidden_channels, channel_mult=channel_mult,
                         num_res_blocks=num_res_blocks, z_channels=z_channels, codebook_size=codebook_size,
                         in_channels=in_channels, norm_groups=norm_groups)
        self.codebook_size = codebook_size
        self.in_channels = in_channels
        self.downsample_factor = 2**(len(channel_mult) - 1)
        levels = (hidden_channels, channel_mult, num_res_blocks, z_channels, norm_groups)
        self.encoder = Encoder(in_channels, *levels) if with_encoder else None
        self.decoder = Decoder(in_channels, *levels)
        self.quantize = NearestCodebook(codebook_size, z_channels)
        if pretrained is not None:
            self.load_pretrained(pretrained)
        elif not allow_random_init:
            raise ValueError('MaskGITVQGAN was built without weights (pretrained=None). As TiTok\'s teacher '
                             f'and pixel decoder it needs the public {PUBLIC_WEIGHTS}. {_HOW_TO_GET} Pass '
                             'allow_random_init=True only for tests or to train this model from scratch.')
        if frozen:
            self.freeze()

    # ------------------------------------------------------------------------------------------------------
    # weights
    def load_pretrained(self, path: str) -> None:
        """Load weights from a local file; raise with missing / unexpected / mis-shaped keys on mismatch."""
        path = osp.expanduser(str(path))
        if not osp.isfile(path):
            raise FileNotFoundError(f'MaskGIT-VQGAN weights {path!r} do not exist. {_HOW_TO_GET}')
        # trusted=False: outside weights load as tensors only, even when named in trust_files().
        state = read_state_dict(path, trusted=False)
        hint = ''
        if any(k.startswith('pixel_') for k in state):
            hint = (' Keys starting with pixel_decoder. / pixel_quantize. come from a TiTok checkpoint; '
                    f'this needs the MaskGIT file {PUBLIC_WEIGHTS}.')
        # a decoder-only teacher ignores the encoder the file holds
        load_state_dict_checked(self, state, path, f'MaskGITVQGAN({self.arch})',
                                f'Check that the architecture arguments match the file.{hint}',
                                ignore_unexpected=('encoder.*', ) if self.encoder is None else ())

    def freeze(self) -> 'MaskGITVQGAN':
        """Eval mode and no parameter gradients; it stays in eval mode when a parent calls ``train()``.

        Gradients still flow through :meth:`soft_decode` to its input logits.
        """
        self._frozen = True
        self.requires_grad_(False)
        keep_out_of_checkpoints(self)  # a frozen copy of the public weights needs no saving
        return super().train(False)

    def train(self, mode: bool = True) -> 'MaskGITVQGAN':
        # The Runner calls model.train() on the whole algorithm; a frozen teacher must not follow.
        return super().train(mode and not self._frozen)

    # ------------------------------------------------------------------------------------------------------
    # codes
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, C, H, W) in [0, 1] -> codes (B, h*w), long in [0, K), row-major (index r * w + c)."""
        if self.encoder is None:
            raise RuntimeError('This MaskGITVQGAN was built with with_encoder=False (a pixel decoder); build '
                               'it with the encoder to compute proxy codes.')
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f'MaskGITVQGAN.encode expects images (B, {self.in_channels}, H, W) in [0, 1], '
                             f'got shape {tuple(images.shape)}.')
        f = self.downsample_factor
        if images.shape[-2] % f or images.shape[-1] % f:
            raise ValueError(f'MaskGITVQGAN.encode: H and W must be multiples of {f}, got '
                             f'{tuple(images.shape[-2:])}. Resize or crop the images first.')
        if images.device.type == 'cpu':  # channels-last convolutions (see decode_features)
            images = images.contiguous(memory_format=torch.channels_last)
        z = self.encoder(images)  # (B, D, h, w)
        return self.quantize(z).flatten(1)  # (B, h*w)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`encode`: the teacher's proxy codes (B, h*w)."""
        return self.encode(images)

    def codes_to_features(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (B, h*w) on a square grid, or (B, h, w) -> codebook vectors (B, D, h, w)."""
        if codes.dim() == 2:
            side = math.isqrt(codes.shape[1])
            if side * side != codes.shape[1]:
                raise ValueError(f'{codes.shape[1]} codes per image do not form a square grid; pass codes as '
                                 '(B, h, w) for a non-square one.')
            codes = codes.view(codes.shape[0], side, side)
        elif codes.dim() != 3:
            raise ValueError(f'codes must be (B, h*w) or (B, h, w), got shape {tuple(codes.shape)}.')
        if codes.dtype.is_floating_point or codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ValueError(f'codes must be integers in [0, {self.codebook_size}), got dtype {codes.dtype}, '
                             f'range [{codes.min().item()}, {codes.max().item()}].')
        return self.quantize.lookup(codes.long())

    def decode_features(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, D, h, w) -> images (B, C, h * f, w * f), about [0, 1], not clamped.

        On the CPU the decoder (and :meth:`encode`'s encoder) runs in channels-last layout (the input's
        layout carries through every convolution, GroupNorm and up-sampling): oneDNN's convolutions then skip
        their layout conversions, 1.3x faster in fp32 and 1.25x in bf16 at batch 8 (docs/results.md). The
        result is returned in the default layout; the numbers agree with the default layout's to float
        rounding.
        """
        if z.device.type == 'cpu':
            return self.decoder(z.contiguous(memory_format=torch.channels_last)).contiguous()
        return self.decoder(z)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (B, h*w) or (B, h, w) -> images (B, C, H, W), about [0, 1], not clamped."""
        return self.decode_features(self.codes_to_features(codes))

    def last_layer_weight(self) -> torch.Tensor:
        """The weight of the decoder's output conv (for an adaptive GAN weight)."""
        return self.decoder.conv_out.weight

    def soft_decode(self, logits: torch.Tensor) -> torch.Tensor:
        """TiTok's stage-2 pixel path: softmax-weighted codebook mixture, then the decoder.

        Args:
            logits: (B, K, h, w) scores over the codes at each grid position (no temperature, no argmax).

        Returns:
            images (B, C, h * f, w * f), about [0, 1], not clamped; differentiable in ``logits``.
        """
        if logits.dim() != 4 or logits.shape[1] != self.codebook_size:
            raise ValueError(f'soft_decode expects logits (B, {self.codebook_size}, h, w), got shape '
                             f'{tuple(logits.shape)}.')
        weight = self.quantize.embedding.weight  # (K, D)
        probs = logits.float().softmax(dim=1).to(weight.dtype)  # fp32 softmax: 1024-way in bf16 is coarse
        z = torch.einsum('bkhw,kd->bdhw', probs, weight)  # (B, D, h, w)
        return self.decode_features(z)
