"""``TokenizerModel``: trains and evaluates a tokenizer (TiTok or nested spectral) under MMEngine.

Three recipes:

* ``'pixel'`` (single stage): every loss on pixels: L2, VQ, optional perceptual and adversarial terms;
* ``'proxy_codes'`` (TiTok's stage 1): the decoder predicts, at each patch, the code a frozen VQGAN teacher
  gives the target image (for the nested tokenizer: the low-pass target of the sample's prefix); cross-entropy
  plus VQ;
* ``'decoder_finetune'`` (TiTok's stage 2): encoder, latent tokens and quantiser frozen; the decoder (and the
  pixel decoder behind a proxy-code head) learn with pixel losses.

With spectral supervision, every target is ``lowpass(image, w_k)`` for the sample's prefix length k
(Algorithm 1); without, the full image.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.structures import BaseDataElement

from mmspectral.registry import MODELS, TOKENIZERS
from mmspectral.spectral import lowpass
from mmspectral.utils import build_component
from mmspectral.utils.value_range import to_unit
from ..tokenizers.loading import adopt_value_range, range_of, tokenizer_value_range, with_value_range

RECIPES = ('pixel', 'proxy_codes', 'decoder_finetune')


def default_eval_prefixes(num_tokens: int) -> List[int]:
    """1, 2, 4, ... up to N, and N itself."""
    ks, k = [], 1
    while k < num_tokens:
        ks.append(k)
        k *= 2
    return ks + [num_tokens]


@MODELS.register_module()
class TokenizerModel(BaseModel):
    """Trains a tokenizer from the TOKENIZERS registry.

    The tokenizer owns the value range of the images (``tokenizer.value_range``); the data preprocessor and
    the perceptual loss are given it, and a different range set on either is refused.

    Args:
        tokenizer: a TOKENIZERS config.
        recipe: 'pixel', 'proxy_codes' or 'decoder_finetune' (module docstring).
        pixel_loss_weight: weight of the L2 reconstruction term.
        quantizer_loss_weight: weight of the VQ terms (commitment and codebook).
        perceptual_loss: optional MODELS config of a perceptual loss (``ConvNeXtPerceptualLoss`` as TiTok, or
            ``LPIPSLoss``), called as ``loss(pred, target)`` on images in the tokenizer's ``value_range``.
        perceptual_loss_weight: its weight (0.1 as TiTok).
        gan_loss: optional MODELS config of ``GANLoss`` (discriminator, weight, start iteration, LeCam); needs
            an ``OptimWrapperDict`` with 'generator' and 'discriminator'.
        proxy_teacher: for 'proxy_codes', a MODELS config of the frozen VQGAN teacher (``MaskGITVQGAN``).
        eval_prefix_lengths: prefix lengths decoded in validation (default 1, 2, 4, ..., N).
        data_preprocessor: defaults to ``ImageDataPreprocessor`` with the tokenizer's ``value_range``.
    """

    @staticmethod
    def reads_images(args) -> bool:
        """Whether a config of this model trains on images (for the config checks): always."""
        return True

    def __init__(self, tokenizer: dict, recipe: str = 'pixel', pixel_loss_weight: float = 1.0,
                 quantizer_loss_weight: float = 1.0, perceptual_loss: Optional[dict] = None,
                 perceptual_loss_weight: float = 0.1, gan_loss: Optional[dict] = None,
                 proxy_teacher: Optional[dict] = None, eval_prefix_lengths: Optional[Sequence[int]] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        tokenizer, value_range = adopt_value_range(tokenizer, {
            'model.data_preprocessor.value_range': range_of(data_preprocessor),
            'model.perceptual_loss.value_range': range_of(perceptual_loss)})
        preprocessor = data_preprocessor or dict(type='ImageDataPreprocessor')
        super().__init__(data_preprocessor=with_value_range(preprocessor, value_range), init_cfg=init_cfg)
        if recipe not in RECIPES:
            raise ValueError(f'Unknown tokenizer recipe {recipe!r}; use one of {RECIPES}.')
        self.recipe = recipe
        self.tokenizer = build_component(tokenizer, TOKENIZERS)
        self.pixel_loss_weight = pixel_loss_weight
        self.quantizer_loss_weight = quantizer_loss_weight
        self.perceptual_loss_weight = perceptual_loss_weight
        self.perceptual_loss = build_component(with_value_range(perceptual_loss, value_range), MODELS)
        self.gan_loss = build_component(gan_loss, MODELS)
        self.proxy_teacher = build_component(proxy_teacher, MODELS)
        head = self.tokenizer.decoder_head
        if recipe == 'proxy_codes':
            if head != 'proxy_codes':
                raise ValueError("recipe='proxy_codes' needs tokenizer decoder_head='proxy_codes'.")
            if self.proxy_teacher is None:
                raise ValueError("recipe='proxy_codes' needs proxy_teacher=dict(type='MaskGITVQGAN', "
                                 "pretrained='path/to/maskgit-vqgan-imagenet-f16-256.bin').")
            factor = getattr(self.proxy_teacher, 'downsample_factor', self.tokenizer.patch_size)
            if factor != self.tokenizer.patch_size:
                raise ValueError(f'The proxy teacher downsamples by {factor} but the tokenizer uses '
                                 f'patch_size={self.tokenizer.patch_size}: '
                                 'their grids must match (one code per patch).')
        elif self.proxy_teacher is not None:
            raise ValueError(f'proxy_teacher is only used by the proxy_codes recipe, not {recipe!r}; '
                             'remove it.')
        if recipe == 'pixel' and head == 'proxy_codes' and self.tokenizer.pixel_decoder is None:
            raise ValueError("recipe='pixel' with decoder_head='proxy_codes' needs the "
                             "tokenizer's pixel_decoder.")
        if recipe == 'decoder_finetune':
            self.tokenizer.freeze_encoder()
        n = self.tokenizer.num_tokens
        self.eval_prefix_lengths = sorted(set(eval_prefix_lengths or default_eval_prefixes(n)))
        if self.eval_prefix_lengths[0] < 1 or self.eval_prefix_lengths[-1] > n:
            raise ValueError(f'eval_prefix_lengths must lie in [1, {n}], got {self.eval_prefix_lengths}.')

    # ------------------------------------------------------------------ helpers
    @property
    def codec(self):
        """The tokenizer network that encodes and decodes images (what inference uses)."""
        return self.tok

    @property
    def value_range(self):
        """The tokenizer's ``value_range``."""
        return tokenizer_value_range(self.tok)

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        """Images in ``value_range`` -> [0, 1], clamped."""
        return to_unit(images.float(), self.value_range).clamp(0, 1)

    @staticmethod
    def _current_iter() -> int:
        return MessageHub.get_current_instance().get_info('iter', 0)

    @property
    def tok(self):
        """The tokenizer itself, also when a DDP wrapper (MMSeparateDistributedDataParallel) holds it."""
        return self.tokenizer.module if is_model_wrapper(self.tokenizer) else self.tokenizer

    @property
    def gan(self):
        return self.gan_loss.module if is_model_wrapper(self.gan_loss) else self.gan_loss

    # ------------------------------------------------------------------ losses
    def autoencoder_losses(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """All losses of the autoencoder (the GAN's generator side) of one batch (``loss_*`` are
        back-propagated, the rest is logged)."""
        return self.losses_and_disc_inputs(images)[0]

    #: the name this method had ("generator" is also the AR model and an RNG elsewhere); kept for callers
    generator_losses = autoencoder_losses

    def losses_and_disc_inputs(self, images: torch.Tensor) -> Tuple[Dict[str, torch.Tensor],
                                                                    Dict[str, torch.Tensor]]:
        """The generator-side losses and what the discriminator step needs (``recon``, ``target``,
        ``prefix_lengths``; empty for the proxy-code recipe).

        Trained modules are called through their ``forward`` (``self.tokenizer(...)``,
        ``self.gan_loss(...)``), so per-module DDP wrappers synchronise them.
        """
        k = self.tok.sample_prefix_lengths(images.shape[0], images.device)
        out = self.tokenizer(images, k, decode_images=self.recipe != 'proxy_codes',
                             encoder_grad=self.recipe != 'decoder_finetune')
        target = out['target']
        losses: Dict[str, torch.Tensor] = {}
        if self.recipe != 'decoder_finetune':
            losses['loss_commit'] = self.quantizer_loss_weight * out['loss_commit']
            losses['loss_codebook'] = self.quantizer_loss_weight * out['loss_codebook']
        losses.update(out['code_stats'])
        losses['prefix_length'] = k.float().mean()
        if self.recipe == 'proxy_codes':
            with torch.no_grad():
                codes = self.proxy_teacher.encode(self.to_unit(target))  # (B, h*w)
            losses['loss_proxy_ce'] = F.cross_entropy(out['output'].flatten(2).float(), codes)
            return losses, {}
        recon = out['images']
        loss_rec = F.mse_loss(recon.float(), target.float())
        losses['loss_rec'] = self.pixel_loss_weight * loss_rec
        if self.perceptual_loss is not None:
            losses['loss_perceptual'] = self.perceptual_loss_weight * self.perceptual_loss(recon, target)
        if self.gan_loss is not None and self.gan.active(self._current_iter()):
            losses.update(self.gan_loss(mode='generator', fake=recon, iter=self._current_iter(),
                                        rec_loss=loss_rec, last_layer=self.tok.last_layer_weight(),
                                        cutoff=self.cutoff(k)))
        return losses, dict(recon=recon, target=target, prefix_lengths=k)

    def cutoff(self, prefix_lengths: torch.Tensor) -> Optional[torch.Tensor]:
        """The tokenizer's ``relative_cutoff`` of each prefix (B,) when the discriminator is conditioned on
        it, else None."""
        if self.gan_loss is None or not self.gan.condition_on_cutoff:
            return None
        return self.tok.relative_cutoff(prefix_lengths)

    # ------------------------------------------------------------------ MMEngine API
    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: Union[OptimWrapper, OptimWrapperDict]):
        """One generator update, then (with a GAN loss) one discriminator update."""
        if isinstance(optim_wrapper, OptimWrapperDict):
            gen_wrapper = optim_wrapper['generator']
            disc_wrapper = optim_wrapper['discriminator'] if 'discriminator' in optim_wrapper else None
        else:
            gen_wrapper, disc_wrapper = optim_wrapper, None
        if self.gan_loss is not None and disc_wrapper is None:
            raise ValueError("A gan_loss needs optim_wrapper=dict(generator=..., discriminator=...) "
                             "(constructor='MultiOptimWrapperConstructor').")
        with gen_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses, for_disc = self.losses_and_disc_inputs(data['inputs'])
        parsed, log_vars = self.parse_losses(losses)
        gen_wrapper.update_params(parsed)
        if disc_wrapper is not None and self.gan.active(self._current_iter()):
            with disc_wrapper.optim_context(self):
                d_losses = self.gan_loss(mode='discriminator', real=for_disc['target'].detach(),
                                         fake=for_disc['recon'].detach(), iter=self._current_iter(),
                                         cutoff=self.cutoff(for_disc['prefix_lengths']))
            d_parsed, d_log = self.parse_losses(d_losses)
            disc_wrapper.update_params(d_parsed)
            log_vars.update({f'disc_{k}' if k == 'loss' else k: v for k, v in d_log.items()})
        return log_vars

    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.autoencoder_losses(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.tok.encode(inputs)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}.")

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, prefix_lengths: Sequence[int]) -> Dict[str, object]:
        """Encode once, decode each prefix. Returns ``tokens`` (B, N), ``recons`` and ``targets``: dicts
        k -> images in [0, 1] (B, 3, H, W)."""
        tok = self.tok
        quantized, info = tok.quantize(tok.encode_continuous(images))
        recons, targets = {}, {}
        for k in prefix_lengths:
            recons[k] = self.to_unit(tok.to_images(tok.decode(quantized[:, :k])))
            w = tok.cutoff(k)  # the reference: the low-pass under the schedule, also for an unsupervised one
            targets[k] = self.to_unit(images if w is None else lowpass(images, w))
        return dict(tokens=info['indices'], recons=recons, targets=targets)

    def predict(self, images: torch.Tensor, data_samples: Optional[list] = None) -> List[BaseDataElement]:
        """One data sample per image with ``image``, ``tokens`` and per-prefix ``recons`` / ``targets``."""
        out = self.reconstruct(images, self.eval_prefix_lengths)
        unit = self.to_unit(images)
        samples = (data_samples if data_samples is not None
                   else [BaseDataElement() for _ in range(len(images))])
        for i, sample in enumerate(samples):
            sample.image = unit[i]  # (3, H, W) in [0, 1]
            sample.tokens = out['tokens'][i]  # (N,)
            sample.recons = {k: v[i] for k, v in out['recons'].items()}
            sample.targets = {k: v[i] for k, v in out['targets'].items()}
        return samples
