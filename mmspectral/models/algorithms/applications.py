"""The applications of a trained generator (paper sections 3.3 and 4.4), as methods of ``GeneratorModel``.

Coarse-to-fine progression, spectral variations of real images, and 2x super-resolution by spectral completion
(with its bicubic baseline). Each samples through the model's ``sample`` (the one sampling surface: defaults,
seed, packed CPU weights, previews) and uses its ``codec`` (the tokenizer), ``encode`` and ``decode``; keyword
arguments are ``sample``'s (``seed``, ``rng`` and sampling settings).
"""
from typing import Dict, Optional

import torch

from mmspectral.spectral import SUBIMAGE_MODES, reassemble_subimages, split_subimages, upsample

__all__ = ['GenerationApplicationsMixin']


class GenerationApplicationsMixin:
    """Progression, variations and super-resolution on top of ``sample`` / ``encode`` / ``decode``."""

    @torch.no_grad()
    def progression(self, labels: torch.Tensor, **kwargs) -> Dict[str, object]:
        """Sample and decode the prefix after every step: the coarse-to-fine sequence of images.

        Returns ``tokens`` and ``steps``, a list of (prefix length, images (B, 3, H, W) in [0, 1]).
        """
        steps = []
        tokens = self.sample(labels, decode=False, on_step=lambda k, images: steps.append((k, images)),
                             **kwargs)['tokens']
        return dict(tokens=tokens, steps=steps)

    @torch.no_grad()
    def variations(self, images: torch.Tensor, labels: torch.Tensor, keep: int, num: int = 4,
                   **kwargs) -> torch.Tensor:
        """Spectral variations: keep the first ``keep`` tokens of real images (their coarse content) and let
        the generator sample the rest ``num`` times. images in [0, 1] (B, 3, H, W) -> (B, num, 3, H, W)."""
        prefix = self.encode(images, keep)
        b = images.shape[0]
        out = self.sample(labels.repeat_interleave(num), prefix=prefix.repeat_interleave(num, 0), **kwargs)
        return out['images'].view(b, num, *images.shape[1:])

    @torch.no_grad()
    def super_resolve(self, images: torch.Tensor, labels: torch.Tensor, mode: str = 'stride',
                      keep_cutoff: Optional[int] = None, **kwargs) -> torch.Tensor:
        """Twice the resolution, as the paper's section 4.4 builds it (and its bicubic baseline).

        ``'stride'`` / ``'patch'``: the S x S image is cut into four (S / 2) x (S / 2) sub-images (pixels
        ``(i::2, j::2)``, or the quadrants), each is up-sampled to S x S (bicubic), so it holds the DCT band
        below S / 2; it keeps the tokens whose cut-off ``w_k`` is at most ``keep_cutoff`` (default S / 2, that
        band) and the generator completes the rest for the class; the four results are interleaved (stride) or
        tiled (patch) into 2S x 2S (``mmspectral.spectral.subimages``). Each sub-image is up-sampled on the
        grid of the 2S pixels it fills (a strided one shifted by 1/8 - i/4 of its pixels), so with nothing
        generated the result would be close to the bicubic 2x up-sampling. ``'bicubic'``: the plain bicubic
        up-sampling, Table 3's baseline. images in [0, 1] (B, 3, S, S) -> (B, 3, 2S, 2S). ``kwargs`` go to
        ``sample`` (e.g. ``rng``, ``cfg_scale``; ``num_tokens`` does not apply: every sub-image is completed).
        """
        if mode not in ('bicubic',) + SUBIMAGE_MODES:
            raise ValueError(f"super_resolve mode must be 'bicubic', 'stride' or 'patch', got {mode!r}.")
        b, _, s, _ = images.shape
        if mode == 'bicubic':
            return upsample(images, 2 * s)
        # (B * 4, 3, S, S), each holding the band below S / 2
        subs = split_subimages(images, mode).flatten(0, 1)
        keep = self.super_resolution_prefix(keep_cutoff)
        prefix = self.encode(subs, keep)
        done = self.sample(labels.repeat_interleave(4), prefix=prefix, **{**kwargs, 'num_tokens': None})
        done = done['images'].view(b, 4, 3, s, s)
        return reassemble_subimages(done, mode)

    def super_resolution_prefix(self, band: Optional[int] = None) -> int:
        """How many leading tokens hold real content in an image that has only the DCT band below ``band``
        (default S / 2: a sub-image of S / 2 pixels up-sampled to S): those whose cut-off ``w_k <= band``.
        TiTok tokens have no band; there the same share of the N tokens is kept."""
        return self.codec.prefix_for_band(band)
