"""Adversarial training for the tokenizer: TiTok's (MaskGIT-style) discriminator, hinge losses and LeCam.

:class:`GANLoss` bundles the discriminator with both players' losses. The algorithm calls
``generator_loss(fake, iter)`` in the tokenizer's step and ``discriminator_loss(real, fake, iter)`` in the
discriminator's step, and optimises ``GANLoss.discriminator`` with its own optimizer. Only back-propagated
terms are named ``loss_*``; the rest (mean logits, the adaptive weight) are logged values.
"""
import math
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmspectral.registry import MODELS
from mmspectral.utils import build_component

__all__ = ['BlurDownsample', 'PatchGANDiscriminator', 'hinge_d_loss', 'hinge_g_loss', 'LeCamRegularizer',
           'adaptive_gan_weight', 'GANLoss']


class BlurDownsample(nn.Module):
    """Anti-aliased 2x downsampling: a fixed depthwise blur with stride 2 and TensorFlow 'SAME' padding.

    The kernel is the outer product of the binomial taps with itself, normalised to sum 1 (buffer ``kernel``,
    ``(1, 1, K, K)``, the same for every channel). Output side = ceil(input side / 2).
    """

    def __init__(self, taps: Sequence[float] = (1.0, 3.0, 3.0, 1.0)) -> None:
        super().__init__()
        t = torch.tensor(taps, dtype=torch.float32)
        kernel = torch.outer(t, t)
        self.register_buffer('kernel', (kernel / kernel.sum())[None, None])  # (1, 1, K, K)

    @staticmethod
    def _same_pad(size: int, k: int) -> tuple:
        total = max((math.ceil(size / 2) - 1) * 2 + k - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, k = x.shape[1], self.kernel.shape[-1]
        pad_h, pad_w = self._same_pad(x.shape[-2], k), self._same_pad(x.shape[-1], k)
        x = F.pad(x, (*pad_w, *pad_h))
        return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, k, k), stride=2, groups=c)


@MODELS.register_module()
class PatchGANDiscriminator(nn.Module):
    """TiTok's discriminator (MaskGIT's VQGAN discriminator): a grid of real/fake logits.

    ``block_in``: conv 5x5 + LeakyReLU. Each stage: conv 3x3, 2x downsampling (blur or 2x2 average),
    GroupNorm, LeakyReLU. Then adaptive max pooling to ``pool_size`` x ``pool_size`` and ``to_logits``: conv
    1x1, LeakyReLU, conv 5x5 to one channel. All convolutions keep the spatial size (stride 1, 'same'
    padding). With the defaults the parameter names and shapes are those of TiTok's ``discriminator.*``
    (``block_in.0``, ``blocks.{i}.{0..3}``, ``to_logits.{0,2}``), so its weights load by name.

    Args:
        in_channels: image channels. Images may be in any value range; nothing is normalised.
        base_channels: width of ``block_in``; stage i has ``base_channels * channel_mult[i]`` channels.
        num_stages: number of downsampling stages; must equal ``len(channel_mult)``.
        channel_mult: width multiplier per stage.
        pool_size: side of the logit grid.
        blur: downsample with the (1, 3, 3, 1) binomial blur (TiTok); False uses 2x2 average pooling instead
            (not a TiTok option).
        norm_groups: GroupNorm groups; every stage width must be divisible by it.
        negative_slope: of the LeakyReLUs.

    Input ``(B, C, H, W)``; output logits ``(B, 1, pool_size, pool_size)``.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 128, num_stages: int = 3,
                 channel_mult: Sequence[int] = (1, 2, 4), pool_size: int = 16, blur: bool = True,
                 norm_groups: int = 32, negative_slope: float = 0.1) -> None:
        super().__init__()
        if len(channel_mult) != num_stages:
            raise ValueError(f'PatchGANDiscriminator: channel_mult {tuple(channel_mult)} has '
                             f'{len(channel_mult)} entries but num_stages={num_stages}; '
                             'give one multiplier per stage.')
        widths = [base_channels * m for m in channel_mult]
        if any(w % norm_groups for w in widths):
            raise ValueError(f'PatchGANDiscriminator: stage widths {widths} must be divisible by '
                             f'norm_groups={norm_groups}; change base_channels or norm_groups.')
        self.block_in = nn.Sequential(nn.Conv2d(in_channels, base_channels, 5, padding=2),
                                      nn.LeakyReLU(negative_slope))
        blocks = []
        c_in = base_channels
        for c_out in widths:
            blocks.append(nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1),
                BlurDownsample() if blur else nn.AvgPool2d(2, ceil_mode=True),
                nn.GroupNorm(norm_groups, c_out),
                nn.LeakyReLU(negative_slope)))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveMaxPool2d(pool_size)
        self.to_logits = nn.Sequential(nn.Conv2d(c_in, c_in, 1), nn.LeakyReLU(negative_slope),
                                       nn.Conv2d(c_in, 1, 5, padding=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block_in(x)  # (B, base, H, W)
        for block in self.blocks:
            x = block(x)  # (B, C_i, H / 2^(i+1), W / 2^(i+1))
        return self.to_logits(self.pool(x))  # (B, 1, pool, pool)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss ``0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake)))``; a scalar."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss of the hinge GAN: ``-mean(fake)``; a scalar."""
    return -fake_logits.mean()


@MODELS.register_module()
class LeCamRegularizer(nn.Module):
    """LeCam regularisation of the discriminator (Tseng et al. 2021), as TiTok uses it.

    ``loss = mean(relu(mean(real) - ema_fake)^2) + mean(relu(ema_real - mean(fake))^2)``, where ``ema_real``
    and ``ema_fake`` are exponential moving averages of the batch-mean logits. The loss uses the averages from
    before this call; in training mode the call then updates them:
    ``ema = decay * ema + (1 - decay) * mean(logits)``. They are buffers (``ema_real_logits_mean``,
    ``ema_fake_logits_mean``, shape ``(1,)``, start at 0), so they are checkpointed. They are per process: not
    averaged across ranks.

    Args:
        decay: EMA decay (0.999 in TiTok).
    """

    def __init__(self, decay: float = 0.999) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'LeCamRegularizer: decay must be in [0, 1), got {decay}.')
        self.decay = float(decay)
        self.register_buffer('ema_real_logits_mean', torch.zeros(1))
        self.register_buffer('ema_fake_logits_mean', torch.zeros(1))

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        real_mean, fake_mean = real_logits.mean(), fake_logits.mean()
        ema_real = self.ema_real_logits_mean.to(real_mean.dtype)
        ema_fake = self.ema_fake_logits_mean.to(fake_mean.dtype)
        loss = F.relu(real_mean - ema_fake).pow(2).mean() + F.relu(ema_real - fake_mean).pow(2).mean()
        if self.training:
            with torch.no_grad():
                self.ema_real_logits_mean.mul_(self.decay).add_(
                    (1.0 - self.decay) * real_mean.detach().float())
                self.ema_fake_logits_mean.mul_(self.decay).add_(
                    (1.0 - self.decay) * fake_mean.detach().float())
        return loss


def adaptive_gan_weight(rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer_weight: torch.Tensor,
                        max_weight: float = 1e4) -> torch.Tensor:
    """VQGAN's adaptive GAN weight: ``||d rec / d W|| / (||d gan / d W|| + 1e-4)``,
    clamped to [0, max_weight].

    ``W`` is the weight of the decoder's last layer. The gradients come from ``torch.autograd.grad`` with
    ``retain_graph=True``, so both losses can still be back-propagated afterwards; the result is detached (a
    0-d tensor). Needs both losses to depend on ``W`` through a graph (grad mode on).
    """
    if not (rec_loss.requires_grad and gan_loss.requires_grad and last_layer_weight.requires_grad):
        raise RuntimeError('adaptive_gan_weight needs rec_loss and gan_loss computed with gradients from a '
                           'last_layer_weight that requires grad; '
                           'call it in the training step (grad mode on), or set adaptive_weight=False.')
    rec_grad, = torch.autograd.grad(rec_loss, last_layer_weight, retain_graph=True)
    gan_grad, = torch.autograd.grad(gan_loss, last_layer_weight, retain_graph=True)
    weight = rec_grad.norm() / (gan_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


@contextmanager
def _frozen_params(module: nn.Module) -> Iterator[None]:
    """Switch off ``requires_grad`` of ``module``'s parameters inside the block, then restore it."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@MODELS.register_module()
class GANLoss(nn.Module):
    """The adversarial part of TiTok's stage-2 loss: a discriminator and both players' losses.

    * Generator (tokenizer) step, :meth:`generator_loss`: ``loss_gan = weight * disc_factor * [w_adaptive] *
      (-mean(D(fake)))``. The discriminator's parameters get no gradient from it (they are switched off for
      the forward), so the discriminator's optimizer never sees the generator's objective.
    * Discriminator step, :meth:`discriminator_loss`: ``loss_disc = disc_factor * hinge_d_loss`` on ``real``
      and ``fake.detach()``, plus ``loss_lecam = lecam_weight * LeCam`` when ``lecam_weight > 0``.

    Both return ``{}`` before ``start_iter`` (nothing is computed, the discriminator does not run).

    Args:
        discriminator: a config dict for the MODELS registry or a built module; None builds TiTok's default
            :class:`PatchGANDiscriminator`.
        weight: weight of the generator's GAN term (0.01 in TiTok).
        start_iter: first iteration (0-based, as ``runner.iter``) at which both terms are on (20000 in TiTok).
        adaptive_weight: multiply the generator term by :func:`adaptive_gan_weight` (VQGAN; TiTok does not).
        max_adaptive_weight: clamp of the adaptive weight.
        lecam_weight: weight of the LeCam regulariser (0.001 in TiTok); 0 disables it.
        lecam_decay: EMA decay of the LeCam anchors.
        disc_factor: factor on both hinge terms (1.0 in TiTok).
        condition_on_cutoff: give the discriminator the prefix's cut-off ``w_k / S`` as one more constant
            input channel (the discriminator then needs ``in_channels`` = image channels + 1; the default one
            is built so). Off, the discriminator judges every low-pass target as real whatever k was asked
            for, so a decode blurrier than its prefix allows still looks real (docs/design.md). Not in the
            paper.
    """

    def __init__(self, discriminator: Union[dict, nn.Module, None] = None, weight: float = 0.01,
                 start_iter: int = 20000, adaptive_weight: bool = False, max_adaptive_weight: float = 1e4,
                 lecam_weight: float = 0.001, lecam_decay: float = 0.999, disc_factor: float = 1.0,
                 condition_on_cutoff: bool = False) -> None:
        super().__init__()
        self.condition_on_cutoff = bool(condition_on_cutoff)
        if discriminator is None:
            discriminator = PatchGANDiscriminator(in_channels=4 if self.condition_on_cutoff else 3)
        self.discriminator = build_component(discriminator, MODELS, expected_type=nn.Module)
        if lecam_weight < 0:
            raise ValueError(f'GANLoss: lecam_weight must be >= 0 (0 disables LeCam), got {lecam_weight}.')
        self.weight = float(weight)
        self.start_iter = int(start_iter)
        self.adaptive_weight = bool(adaptive_weight)
        self.max_adaptive_weight = float(max_adaptive_weight)
        self.lecam_weight = float(lecam_weight)
        self.disc_factor = float(disc_factor)
        self.lecam = LeCamRegularizer(lecam_decay) if lecam_weight > 0 else None

    def forward(self, mode: str, **kwargs) -> Dict[str, torch.Tensor]:
        """``mode='generator'`` -> :meth:`generator_loss`, ``'discriminator'`` -> :meth:`discriminator_loss`.

        Going through ``forward`` lets a DDP wrapper of this module (MMSeparateDistributedDataParallel)
        synchronise the discriminator's gradients.
        """
        if mode == 'generator':
            return self.generator_loss(**kwargs)
        if mode == 'discriminator':
            return self.discriminator_loss(**kwargs)
        raise ValueError(f"GANLoss mode must be 'generator' or 'discriminator', got {mode!r}.")

    def _judge(self, images: torch.Tensor, cutoff: Optional[torch.Tensor]) -> torch.Tensor:
        """Discriminator logits; with ``condition_on_cutoff`` the cut-off ``(B,)`` in (0, 1]
        is one more channel."""
        if not self.condition_on_cutoff:
            return self.discriminator(images)
        if cutoff is None:
            raise ValueError('GANLoss(condition_on_cutoff=True) needs cutoff=w_k / image_size per sample '
                             '(B,); the TokenizerModel passes it. '
                             'Set condition_on_cutoff=False to judge images alone.')
        plane = cutoff.to(images.dtype).view(-1, 1, 1, 1).expand(-1, 1, *images.shape[-2:])
        return self.discriminator(torch.cat([images, plane], dim=1))

    def active(self, iter: int) -> bool:
        """Whether the adversarial terms are on at iteration ``iter`` (``runner.iter``)."""
        return iter >= self.start_iter

    def generator_loss(self, fake: torch.Tensor, iter: int, rec_loss: Optional[torch.Tensor] = None,
                       last_layer: Optional[torch.Tensor] = None,
                       cutoff: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """The tokenizer's adversarial term.

        Args:
            fake: reconstructions ``(B, C, H, W)``, with their graph (not detached).
            iter: current iteration.
            rec_loss: the reconstruction loss, for the adaptive weight.
            last_layer: weight tensor of the decoder's last layer, for the adaptive weight.
            cutoff: ``w_k / S`` of each sample's prefix (B,), used with ``condition_on_cutoff``.

        Returns:
            ``{}`` before ``start_iter``; else ``loss_gan`` (scalar), ``gen_fake_logits`` (logged mean logit)
            and, with ``adaptive_weight``, ``gan_adaptive_weight`` (logged).
        """
        if not self.active(iter):
            return {}
        with _frozen_params(self.discriminator):
            fake_logits = self._judge(fake, cutoff)  # (B, 1, P, P)
        g_loss = hinge_g_loss(fake_logits)
        scale = self.weight * self.disc_factor
        out = {}
        if self.adaptive_weight:
            if rec_loss is None or last_layer is None:
                raise ValueError('GANLoss(adaptive_weight=True).generator_loss needs rec_loss and last_layer '
                                 "(the weight of the decoder's last layer); pass both, "
                                 'or set adaptive_weight=False.')
            adaptive = adaptive_gan_weight(rec_loss, g_loss, last_layer, self.max_adaptive_weight)
            out['gan_adaptive_weight'] = adaptive
            scale = scale * adaptive
        out['loss_gan'] = scale * g_loss
        out['gen_fake_logits'] = fake_logits.detach().mean()
        return out

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor, iter: int,
                           cutoff: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """The discriminator's loss; ``fake`` is detached here, so nothing reaches the generator.

        Args:
            real: real images ``(B, C, H, W)``.
            fake: reconstructions, same shape.
            iter: current iteration.
            cutoff: ``w_k / S`` of each pair (B,), used with ``condition_on_cutoff`` (real and fake share it).

        Returns:
            ``{}`` before ``start_iter``; else ``loss_disc``, ``loss_lecam`` (if enabled), and the logged mean
            logits ``disc_real_logits`` and ``disc_fake_logits``.
        """
        if not self.active(iter):
            return {}
        real, fake = real.detach(), fake.detach()
        if real.shape == fake.shape:
            # One pass over both halves: GroupNorm is per sample, so this equals two separate passes.
            both = None if cutoff is None else torch.cat([cutoff, cutoff])
            real_logits, fake_logits = self._judge(torch.cat([real, fake]), both).chunk(2)
        else:
            real_logits, fake_logits = self._judge(real, cutoff), self._judge(fake, cutoff)
        out = {'loss_disc': self.disc_factor * hinge_d_loss(real_logits, fake_logits)}
        if self.lecam is not None:
            out['loss_lecam'] = self.lecam_weight * self.lecam(real_logits, fake_logits)
        out['disc_real_logits'] = real_logits.detach().mean()
        out['disc_fake_logits'] = fake_logits.detach().mean()
        return out
