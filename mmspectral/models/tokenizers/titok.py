"""The TiTok 1D tokenizer (TOKENIZERS), the network both the baseline and SpectralAR use.

SpectralAR's :class:`~mmspectral.models.tokenizers.nested_spectral.NestedSpectralTokenizer` is this class with
other defaults; the two differ in four switches, which are the rows of the paper's Table 4:

============================  ===================  =============================
switch                        TiTokTokenizer       NestedSpectralTokenizer
============================  ===================  =============================
``spectral_supervision``      False (full image)   True (low-pass of prefix k)
``prefix_sampling``           None (always N)      uniform k in 1..N per sample
``attn_mask``                 BidirectionalMask    SpectralCausalMask
``freq_schedule``             None                 NonUniformFreqSchedule (eq. 9)
============================  ===================  =============================
"""
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn

from mmspectral.registry import ATTN_MASKS, MODELS, QUANTIZERS, TOKENIZERS
from mmspectral.spectral import build_freq_schedule, lowpass
from mmspectral.utils import build_component
from mmspectral.utils.value_range import check_value_range, from_unit, to_unit, uint8_normalisation
from ..masks import BaseAttnMask, SpectralCausalMask
from .vit_codec import ViTTokenDecoder, ViTTokenEncoder

# TiTok's sizes: (width, depth, heads).
ARCH_SETTINGS = {'S': (512, 8, 8), 'B': (768, 12, 12), 'L': (1024, 24, 16)}


class PrefixSampler:
    """Draws the prefix length k of each training sample (Algorithm 1, line 4).

    Args:
        distribution: 'uniform' (k uniform in [min_length, N]) or 'full' (always N).
        per_sample: one k per sample (default; one pass with per-sample masks) or one k for the whole batch.
        min_length: the shortest prefix drawn.
        full_fraction: with 'uniform', the share of samples that decode all N tokens instead (0: plain
            uniform, as the paper). Small tokenizers trained for a few thousand steps learn fine detail faster
            with it, since only the longest prefixes ask for it.
    """

    def __init__(self, num_tokens: int, distribution: str = 'uniform', per_sample: bool = True,
                 min_length: int = 1, full_fraction: float = 0.0) -> None:
        if distribution not in ('uniform', 'full'):
            raise ValueError("prefix_sampling distribution must be 'uniform' or 'full', "
                             f'got {distribution!r}.')
        if not 1 <= min_length <= num_tokens:
            raise ValueError(f'prefix_sampling min_length must lie in [1, {num_tokens}], got {min_length}.')
        if not 0.0 <= full_fraction <= 1.0:
            raise ValueError(f'prefix_sampling full_fraction must lie in [0, 1], got {full_fraction}.')
        self.full_fraction = float(full_fraction)
        self.num_tokens = num_tokens
        self.distribution = distribution
        self.per_sample = per_sample
        self.min_length = min_length

    def __call__(self, batch_size: int, device=None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(B,) long prefix lengths in [min_length, N]."""
        if self.distribution == 'full':
            return torch.full((batch_size,), self.num_tokens, dtype=torch.long, device=device)
        count = batch_size if self.per_sample else 1
        k = torch.randint(self.min_length, self.num_tokens + 1, (count,), generator=generator)  # on the CPU
        if self.full_fraction > 0:
            full = torch.rand(count, generator=generator) < self.full_fraction
            k = torch.where(full, torch.full_like(k, self.num_tokens), k)
        return k.expand(batch_size).to(device, non_blocking=True)  # no stream sync for the copy to a GPU


@TOKENIZERS.register_module()
class TiTokTokenizer(nn.Module):
    """TiTok: a ViT encoder that reads N learned latent tokens, an l2-normalised VQ, and a ViT decoder.

    Args:
        arch: 'S', 'B' or 'L' (TiTok's sizes); ``width`` / ``depth`` / ``num_heads`` override it.
        image_size: square image side in pixels; must be divisible by ``patch_size``.
        patch_size: ViT patch side.
        num_tokens: N latent tokens.
        token_size: D, the dimension of a quantised token (12 in TiTok).
        codebook_size: K, the vocabulary (4096 in TiTok).
        mlp_ratio, drop_path: transformer settings.
        quantizer: a QUANTIZERS config; ``codebook_size`` and ``token_size`` are filled in.
        attn_mask: an ATTN_MASKS config used by both the encoder and the decoder.
        freq_schedule: a FREQ_SCHEDULES config (``num_tokens`` / ``image_size`` filled in); needed by
            ``spectral_supervision``.
        spectral_supervision: the target of prefix k is ``lowpass(image, w_k)``; False: the full image.
        prefix_sampling: None (every sample decodes all N tokens, as TiTok) or
            ``dict(distribution='uniform', per_sample=True, min_length=1)``.
        decoder_head: 'pixels' (TiTok's linear patch head), 'conv' (a convolutional up-sampler over the patch
            grid: no patch seams; the tiny configs' option) or 'proxy_codes' (TiTok's two-stage recipe: the
            decoder predicts the codes of a VQGAN teacher; images then come from ``pixel_decoder``).
        proxy_codebook_size: the teacher's codebook size for 'proxy_codes'.
        conv_head: for 'conv', the up-sampler's ``channels`` (128), ``min_channels`` (32) and
            ``convs_per_stage`` (2).
        pixel_decoder: for 'proxy_codes', a MODELS config of the module that turns code logits into images
            (``MaskGITVQGAN(with_encoder=False, pretrained=...)``, through its ``soft_decode``); None leaves
            ``decode_tokens`` unavailable for that head.
        legacy_token_projection: the official TiTok checkpoints' encoder projection (see ViTTokenEncoder).
        init_std: standard deviation of the (truncated normal) initial weights of every linear and conv layer:
            0.02 as TiTok, or 'fan_in' for ``fan_in ** -0.5`` per layer. TiTok's 0.02 suits width 768; at
            small widths it shrinks every layer's output so much that the decoder ignores the tokens for
            thousands of steps, which 'fan_in' avoids (docs/design.md).
        value_range: ``(lo, hi)`` of the images the network sees: ``(0, 1)`` as TiTok, or ``(-1, 1)``. The one
            place a model sets it: the data preprocessor, the perceptual loss and every decode to [0, 1]
            (``encode_images`` / ``decode_images``) take it from here.
    """

    def __init__(self, arch: str = 'B', image_size: int = 256, patch_size: int = 16, num_tokens: int = 64,
                 token_size: int = 12, codebook_size: int = 4096, width: Optional[int] = None,
                 depth: Optional[int] = None, num_heads: Optional[int] = None, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, quantizer: Optional[dict] = None,
                 attn_mask: Union[dict, BaseAttnMask, None] = None, freq_schedule: Optional[dict] = None,
                 spectral_supervision: bool = False, prefix_sampling: Optional[dict] = None,
                 decoder_head: str = 'pixels', proxy_codebook_size: int = 1024,
                 conv_head: Optional[dict] = None,
                 pixel_decoder: Optional[dict] = None, legacy_token_projection: bool = False,
                 init_std: Union[float, str] = 0.02, value_range: Sequence[float] = (0.0, 1.0)) -> None:
        super().__init__()
        if arch not in ARCH_SETTINGS:
            raise ValueError(f'Unknown tokenizer arch {arch!r}; use one of {sorted(ARCH_SETTINGS)} or set '
                             'width, depth and num_heads.')
        width = width or ARCH_SETTINGS[arch][0]
        depth = depth or ARCH_SETTINGS[arch][1]
        num_heads = num_heads or ARCH_SETTINGS[arch][2]
        size_problem = self.count_problem(dict(image_size=image_size, patch_size=patch_size,
                                               num_tokens=num_tokens, token_size=token_size,
                                               codebook_size=codebook_size))
        size_problem = size_problem or self.patch_problem(image_size, patch_size)
        if size_problem:
            raise ValueError(size_problem)
        if width % num_heads:
            raise ValueError(f'width={width} is not divisible by num_heads={num_heads}.')
        self.value_range = check_value_range(value_range, type(self).__name__)
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_tokens = num_tokens
        self.codebook_size = codebook_size
        self.spectral_supervision = spectral_supervision

        self.attn_mask = build_component(attn_mask or dict(type='BidirectionalMask'), ATTN_MASKS,
                                         expected_type=BaseAttnMask)
        self.freq_schedule = (build_freq_schedule(freq_schedule, num_tokens, image_size)
                              if freq_schedule is not None else None)
        if spectral_supervision and self.freq_schedule is None:
            raise ValueError('spectral_supervision=True needs a freq_schedule, e.g. '
                             "freq_schedule=dict(type='NonUniformFreqSchedule').")
        self.prefix_sampler = PrefixSampler(num_tokens, **prefix_sampling) if prefix_sampling else None

        self.latent_tokens = nn.Parameter(width ** -0.5 * torch.randn(num_tokens, width))
        self.encoder = ViTTokenEncoder(image_size, patch_size, width, depth, num_heads, num_tokens,
                                       token_size, mlp_ratio, drop_path, legacy_token_projection)
        self.decoder = ViTTokenDecoder(image_size, patch_size, width, depth, num_heads, num_tokens,
                                       token_size, mlp_ratio, drop_path, head=decoder_head,
                                       proxy_codebook_size=proxy_codebook_size, conv_head=conv_head)
        if not (init_std == 'fan_in' or isinstance(init_std, (int, float))):
            raise ValueError(f"init_std must be a number or 'fan_in', got {init_std!r}.")
        self.init_std = init_std
        self.apply(self._init_weights)
        quantizer = dict(quantizer or dict(type='VectorQuantizer'))
        quantizer.setdefault('codebook_size', codebook_size)
        quantizer.setdefault('token_size', token_size)
        self.quantizer = build_component(quantizer, QUANTIZERS)
        self.pixel_decoder = None
        if pixel_decoder is not None:
            self.pixel_decoder = build_component(pixel_decoder, MODELS)

    def _init_weights(self, module: nn.Module) -> None:
        # TiTok's initialisation: truncated normal weights (std 0.02), zero biases, unit LayerNorms.
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            std = module.weight[0].numel() ** -0.5 if self.init_std == 'fan_in' else float(self.init_std)
            nn.init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    #: The schedule a config without ``freq_schedule`` gets (the nested tokenizer's default).
    default_freq_schedule: Optional[dict] = None

    @staticmethod
    def patch_problem(image_size, patch_size) -> Optional[str]:
        """Why ``image_size`` does not split into whole patches of ``patch_size``, or None."""
        if not (isinstance(image_size, int) and isinstance(patch_size, int)) or patch_size <= 0:
            return None
        if image_size % patch_size == 0:
            return None
        low = image_size - image_size % patch_size
        fits = [s for s in (low, low + patch_size) if s > 0]
        return (f'image_size={image_size} is not divisible by patch_size={patch_size}, so the image does not '
                f'split into whole patches. Use image_size {" or ".join(map(str, fits))}, or a patch_size '
                f'that divides {image_size}.')

    @staticmethod
    def count_problem(args: Mapping) -> Optional[str]:
        """Why a size or count argument is impossible (not an integer, or too small), or None."""
        for key, least in (('image_size', 1), ('patch_size', 1), ('num_tokens', 1), ('token_size', 1),
                           ('codebook_size', 2)):
            value = args.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                why = ' (a codebook needs two codes to carry information)' if key == 'codebook_size' else ''
                return f'{key}={value!r}: it must be an integer of at least {least}{why}.'
        return None

    @classmethod
    def check_config(cls, args: Mapping, where: str = 'tokenizer',
                     cfg: Optional[Mapping] = None) -> List[str]:
        """The problems of a config of this tokenizer, found before anything is built (the config checks of
        ``mmspectral.engine.preflight`` call this with the config's arguments over the defaults)."""
        size = args.get('image_size')
        problem = cls.count_problem(args) or cls.patch_problem(size, args.get('patch_size'))
        if problem:
            return [f'{where}: {problem}']
        try:
            check_value_range(args.get('value_range', (0.0, 1.0)), f'{where}.value_range')
        except ValueError as exc:
            return [str(exc)]
        schedule = args.get('freq_schedule')
        if schedule is None:
            schedule = cls.default_freq_schedule
        if schedule is None and args.get('spectral_supervision'):
            return [f"{where}: spectral_supervision=True needs a freq_schedule, e.g. "
                    "freq_schedule=dict(type='NonUniformFreqSchedule')."]
        if isinstance(schedule, Mapping):
            try:  # pure arithmetic: the schedule validates itself when built
                build_freq_schedule(dict(schedule), args.get('num_tokens'), size)
            except (ValueError, TypeError, KeyError) as exc:
                return [f'{where}.freq_schedule: {exc}']
        return []

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        return self.codebook_size

    @property
    def is_causal(self) -> bool:
        """Whether token i depends on tokens j <= i only, so that a prefix can be encoded on its own."""
        return (isinstance(self.attn_mask, SpectralCausalMask) and not self.attn_mask.context_sees_latents
                and not self.encoder.legacy_token_projection)

    # ------------------------------------------------------------------ continuous path
    def encode_continuous(self, images: torch.Tensor, num_tokens: Optional[int] = None) -> torch.Tensor:
        """Pre-quantisation latents (B, k, D); k = N unless ``num_tokens``.
        Causal tokenizers compute only k."""
        k = self._check_length(num_tokens)
        self._check_images(images)
        if self.is_causal:
            return self.encoder(images, self.latent_tokens, self.attn_mask, num_tokens=k)
        return self.encoder(images, self.latent_tokens, self.attn_mask)[:, :k]

    def quantize(self, latents: torch.Tensor):
        """latents (B, k, D) -> quantised (B, k, D) and a dict with ``indices`` and the VQ loss terms."""
        return self.quantizer(latents)

    def decode(self, quantized: torch.Tensor, prefix_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Quantised tokens (B, k, D) -> the decoder's output: images, or proxy-code logits (B, K, h, w)."""
        return self.decoder(quantized, self.attn_mask, prefix_lengths)

    def forward(self, images: torch.Tensor, prefix_lengths: Optional[torch.Tensor] = None,
                decode_images: bool = False, encoder_grad: bool = True) -> Dict[str, torch.Tensor]:
        """The training path: encode all N tokens, quantise, decode each sample's prefix.

        Everything that trains runs inside this call, so a DDP wrapper of the tokenizer sees all of it.

        Args:
            images: (B, 3, H, W) in the training value range.
            prefix_lengths: (B,) tokens each sample decodes; default N.
            decode_images: also return ``images``, the decoder's output turned into pixels (needed when the
                decoder predicts proxy codes and the pixel decoder trains).
            encoder_grad: False runs the encoder and quantiser without gradients (TiTok's stage 2).

        Returns:
            ``output`` (images or proxy-code logits), ``indices`` (B, N), ``loss_commit``, ``loss_codebook``,
            ``prefix_lengths`` (B,), ``target`` (what each sample's prefix should reconstruct,
            :meth:`target`), ``code_stats`` (codebook usage and perplexity, logged) and, with
            ``decode_images``, ``images``.
        """
        b = images.shape[0]
        one_k = None  # one k for the whole batch: decode a shorter sequence instead of masked slots
        if prefix_lengths is None:
            one_k = self.num_tokens
            prefix_lengths = torch.full((b,), self.num_tokens, dtype=torch.long, device=images.device)
        elif prefix_lengths.device.type == 'cpu' and bool((prefix_lengths == prefix_lengths[0]).all()):
            one_k = int(prefix_lengths[0])  # (on a GPU this test would cost a synchronisation every step)
        with torch.set_grad_enabled(encoder_grad and torch.is_grad_enabled()):
            quantized, info = self.quantize(self.encode_continuous(images))
        if one_k is not None:
            output = self.decode(quantized[:, :one_k])
        else:
            output = self.decode(quantized, prefix_lengths)
        result = dict(output=output, prefix_lengths=prefix_lengths,
                      target=self.target(images, prefix_lengths),
                      code_stats=self.quantizer.usage(info['indices']), **info)
        if decode_images:
            result['images'] = self.to_images(output)
        return result

    # ------------------------------------------------------------------ training helpers
    @property
    def decoder_head(self) -> str:
        """What the decoder predicts: 'pixels' or 'conv' (images), or 'proxy_codes'."""
        return self.decoder.head

    def last_layer_weight(self) -> torch.Tensor:
        """The weight of the last layer that makes pixels (the adaptive GAN weight's reference)."""
        if self.decoder.head == 'pixels':
            return self.decoder.conv_out.weight
        if self.decoder.head == 'conv':
            return self.decoder.conv_head.conv_out.weight
        return self.pixel_decoder.last_layer_weight()

    def freeze_encoder(self) -> None:
        """Freeze the encoder, the latent queries and the codebook
        (TiTok's stage 2 trains the decoder only)."""
        for module in (self.encoder, self.quantizer):
            module.requires_grad_(False)
        self.latent_tokens.requires_grad_(False)

    def sample_prefix_lengths(self, batch_size: int, device=None,
                              generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Prefix lengths for a training batch: N for every sample unless ``prefix_sampling`` is set."""
        if self.prefix_sampler is None:
            return torch.full((batch_size,), self.num_tokens, dtype=torch.long, device=device)
        return self.prefix_sampler(batch_size, device, generator)

    # ------------------------------------------------------------------ prefixes and frequency bands
    def cutoff(self, k: Union[int, torch.Tensor]) -> Union[int, torch.Tensor, None]:
        """The DCT cut-off ``w_k`` of prefix length ``k`` (an int, or a tensor of lengths) under this
        tokenizer's frequency schedule; None when it has none (TiTok)."""
        return None if self.freq_schedule is None else self.freq_schedule.omega(k)

    def cutoffs(self) -> Optional[List[int]]:
        """``[w_1, ..., w_N]``, or None without a frequency schedule."""
        return None if self.freq_schedule is None else list(self.freq_schedule.omegas)

    def relative_cutoff(self, prefix_lengths: torch.Tensor) -> torch.Tensor:
        """``w_k / S`` of each prefix (B,): the share of the spectrum its training target keeps (1 without
        spectral supervision, where the target is the whole image)."""
        if not self.spectral_supervision:
            return torch.ones(prefix_lengths.shape, device=prefix_lengths.device)
        return self.freq_schedule.omega(prefix_lengths).float() / self.freq_schedule.image_size

    def prefix_for_band(self, band: Optional[int] = None) -> int:
        """How many leading tokens hold real content in an image that has only the DCT band below ``band``
        (default S / 2: an (S / 2)-pixel image up-sampled to S): those whose cut-off ``w_k <= band``.
        Without a schedule (TiTok) the same share of the N tokens."""
        n, size = self.num_tokens, self.image_size
        band = size // 2 if band is None else int(band)
        omegas = self.cutoffs()
        keep = sum(w <= band for w in omegas) if omegas is not None else round(n * band / size)
        return max(1, min(keep, n))

    def target(self, images: torch.Tensor, k: Union[int, torch.Tensor]) -> torch.Tensor:
        """What prefix ``k`` (an int, or the (B,) lengths of a batch) is trained to reconstruct:
        ``lowpass(image, w_k)`` with spectral supervision, else the image."""
        if not self.spectral_supervision:
            return images
        if isinstance(k, torch.Tensor):
            k = k.to(images.device)
        return lowpass(images, self.freq_schedule.omega(k))

    # ------------------------------------------------------------------ images in [0, 1]
    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, num_tokens: Optional[int] = None) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] (float) or 0..255 (uint8) -> token ids (B, k), k = ``num_tokens`` or
        N; mapped to ``value_range`` as the data preprocessor maps training batches."""
        if images.dtype == torch.uint8:
            mean, std = uint8_normalisation(self.value_range)
            images = (images.float() - mean) / std
        else:
            images = from_unit(images, self.value_range)
        return self.encode(images, num_tokens)

    @torch.no_grad()
    def decode_images(self, tokens: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Token ids (B, k), any prefix -> images (B, 3, H, W) in [0, 1] (float32; clamped unless
        ``clamp`` is False)."""
        images = to_unit(self.decode_tokens(tokens).float(), self.value_range)
        return images.clamp(0, 1) if clamp else images

    # ------------------------------------------------------------------ discrete interface
    @torch.no_grad()
    def encode(self, images: torch.Tensor, num_tokens: Optional[int] = None) -> torch.Tensor:
        """Images (B, 3, H, W) in the training value range -> token ids (B, k), k = ``num_tokens`` or N."""
        _, info = self.quantize(self.encode_continuous(images, num_tokens))
        return info['indices']

    @torch.no_grad()
    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (B, k), any prefix 1 <= k <= N -> images (B, 3, H, W), not clamped."""
        if tokens.dim() != 2:
            raise ValueError(f'decode_tokens expects token ids of shape (B, k), got {tuple(tokens.shape)}.')
        self._check_length(tokens.shape[1])
        return self.to_images(self.decode(self.quantizer.lookup(tokens)))

    def to_images(self, output: torch.Tensor) -> torch.Tensor:
        """The decoder's output as images: pixels pass through; proxy-code logits go through
        ``pixel_decoder``."""
        if self.decoder.head != 'proxy_codes':
            return output
        if self.pixel_decoder is None:
            raise RuntimeError('This tokenizer predicts proxy codes (decoder_head="proxy_codes") and has no '
                               'pixel_decoder to turn them into images; set pixel_decoder=dict(type='
                               '"MaskGITVQGAN", with_encoder=False, pretrained=...) (stage 2 / inference '
                               'configs do).')
        return self.pixel_decoder.soft_decode(output)

    # ------------------------------------------------------------------ checks
    def _check_length(self, num_tokens: Optional[int]) -> int:
        k = self.num_tokens if num_tokens is None else int(num_tokens)
        if not 1 <= k <= self.num_tokens:
            raise ValueError(f'A prefix must hold 1..{self.num_tokens} tokens, got {k}.')
        return k

    def _check_images(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (self.image_size,) * 2:
            raise ValueError('The tokenizer takes images of shape '
                             f'(B, 3, {self.image_size}, {self.image_size}), got {tuple(images.shape)}.')
