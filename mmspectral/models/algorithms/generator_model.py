"""``GeneratorModel``: trains a GENERATORS model on token sequences under MMEngine.

Tokens come either from a TokenDataset (extracted once with ``tools/extract_tokens.py``; inputs are (B, N) ids)
or, with ``encode_on_the_fly=True``, from images encoded by a frozen tokenizer in every step. The loss is the
cross-entropy of next-token prediction; the log also carries the loss and accuracy of each range of positions,
which shows which spectral positions are hard.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel, is_model_wrapper

from mmspectral.registry import GENERATORS, MODELS
from mmspectral.spectral import SUBIMAGE_MODES, reassemble_subimages, split_subimages, upsample
from mmspectral.utils import build_component
from ..tokenizers.loading import load_tokenizer
from ..utils import keep_out_of_checkpoints


def position_bins(num_tokens: int, num_bins: int) -> List[range]:
    """Split positions 0..N-1 into ``num_bins`` contiguous ranges (fewer if N is small)."""
    num_bins = max(1, min(num_bins, num_tokens))
    edges = [round(i * num_tokens / num_bins) for i in range(num_bins + 1)]
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:])]


@MODELS.register_module()
class GeneratorModel(BaseModel):
    """Next-token training of an autoregressive generator over a tokenizer's 1D tokens.

    Args:
        generator: a GENERATORS config.
        tokenizer: optional TOKENIZERS config of the tokenizer the tokens come from; needed to decode samples
            and for ``encode_on_the_fly``. Its ``num_tokens`` and ``vocab_size`` must match the generator's.
        tokenizer_checkpoint: the trained tokenizer (a TokenizerModel checkpoint), loaded frozen.
        encode_on_the_fly: inputs are images, encoded by the frozen tokenizer in every step.
        num_position_bins: ranges of positions whose loss / accuracy are logged separately.
        sampling: keyword arguments of ``generator.generate`` used by ``sample`` (cfg_scale, top_k, ...).
        image_value_range: the value range the tokenizer was trained in (decoded images are mapped to [0, 1]).
        data_preprocessor: default moves token batches to the device; use ``ImageDataPreprocessor`` with
            ``encode_on_the_fly``.
    """

    def __init__(self, generator: dict, tokenizer: Optional[dict] = None, tokenizer_checkpoint: Optional[str] = None,
                 encode_on_the_fly: bool = False, num_position_bins: int = 8, sampling: Optional[dict] = None,
                 image_value_range: Sequence[float] = (0.0, 1.0), data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='ImageDataPreprocessor') if encode_on_the_fly else \
                dict(type='BaseDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.generator = build_component(generator, GENERATORS)
        self.tokenizer = None
        if tokenizer is not None:
            self.tokenizer = keep_out_of_checkpoints(load_tokenizer(tokenizer, tokenizer_checkpoint))
            for key, mine, theirs in (('num_tokens', self.generator.num_tokens, self.tokenizer.num_tokens),
                                      ('vocab_size', self.generator.vocab_size, self.tokenizer.vocab_size)):
                if mine != theirs:
                    raise ValueError(f'The generator has {key}={mine} but the tokenizer has {key}={theirs}; set '
                                     f'generator.{key}={theirs} (or use the tokenizer the tokens came from).')
        if encode_on_the_fly and self.tokenizer is None:
            raise ValueError('encode_on_the_fly=True needs tokenizer=... and tokenizer_checkpoint=...')
        self.encode_on_the_fly = encode_on_the_fly
        self.bins = position_bins(self.generator.num_tokens, num_position_bins)
        self.sampling = dict(sampling or {})
        self.image_value_range = tuple(float(v) for v in image_value_range)

    @property
    def gen(self):
        return self.generator.module if is_model_wrapper(self.generator) else self.generator

    def train(self, mode: bool = True) -> 'GeneratorModel':
        super().train(mode)
        if self.tokenizer is not None:
            self.tokenizer.eval()  # always frozen
        return self

    def _tokens_and_labels(self, inputs, data_samples: Sequence):
        if isinstance(inputs, (list, tuple)):  # pseudo_collate keeps samples in a list
            inputs = torch.stack(list(inputs))
        labels = torch.stack([s.gt_label for s in data_samples]).to(inputs.device).view(-1)
        if self.encode_on_the_fly:
            with torch.no_grad():
                return self.tokenizer.encode(inputs), labels
        return inputs.long(), labels

    def token_stats(self, logits: torch.Tensor, tokens: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Mean cross-entropy and accuracy per range of positions, for logging and evaluation."""
        ce = F.cross_entropy(logits.transpose(1, 2), tokens, reduction='none')  # (B, N)
        hit = (logits.argmax(-1) == tokens).float()
        stats = {}
        for rng in self.bins:
            name = f'pos{rng.start + 1}-{rng.stop}' if len(rng) > 1 else f'pos{rng.start + 1}'
            stats[f'ce_{name}'] = ce[:, rng].mean().detach()
            stats[f'acc_{name}'] = hit[:, rng].mean()
        stats['acc'] = hit.mean()
        return stats

    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None, mode: str = 'tensor'):
        tokens, labels = self._tokens_and_labels(inputs, data_samples)
        logits = self.generator(tokens, labels)  # (B, N, V)
        if mode == 'loss':
            losses = dict(loss_ce=F.cross_entropy(logits.transpose(1, 2), tokens))
            with torch.no_grad():
                losses.update(self.token_stats(logits.detach(), tokens))
            return losses
        if mode == 'predict':
            ce = F.cross_entropy(logits.transpose(1, 2), tokens, reduction='none')
            hit = logits.argmax(-1) == tokens
            out = []
            for i, sample in enumerate(data_samples):
                sample.token_ce = ce[i].detach()  # (N,) teacher-forced cross-entropy per position
                sample.token_hit = hit[i]
                out.append(sample)
            return out
        if mode == 'tensor':
            return logits
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}.")

    # ------------------------------------------------------------------ sampling and applications
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (B, k), any prefix -> images in [0, 1] (B, 3, H, W)."""
        if self.tokenizer is None:
            raise RuntimeError('Decoding needs the tokenizer: set tokenizer=... and tokenizer_checkpoint=...')
        lo, hi = self.image_value_range
        images = self.tokenizer.to_images(self.tokenizer.decode(self.tokenizer.quantizer.lookup(tokens)))
        return ((images.float() - lo) / (hi - lo)).clamp(0, 1)

    def encode(self, images: torch.Tensor, num_tokens: Optional[int] = None) -> torch.Tensor:
        """Images in [0, 1] (B, 3, H, W) -> token ids (B, k) with the frozen tokenizer."""
        lo, hi = self.image_value_range
        return self.tokenizer.encode(images * (hi - lo) + lo, num_tokens)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, decode: bool = True, **kwargs) -> Dict[str, torch.Tensor]:
        """Generate tokens for ``labels`` with the configured sampling settings (overridable by ``kwargs``,
        e.g. ``num_tokens`` for truncated generation) and, with ``decode``, the images in [0, 1]."""
        tokens = self.gen.generate(labels, **{**self.sampling, **kwargs})
        out = dict(tokens=tokens)
        if decode:
            out['images'] = self.decode(tokens)
        return out

    @torch.no_grad()
    def progression(self, labels: torch.Tensor, **kwargs) -> Dict[str, object]:
        """Sample and decode the prefix after every step: the coarse-to-fine sequence of images.

        Returns ``tokens`` and ``steps``, a list of (prefix length, images (B, 3, H, W) in [0, 1]).
        """
        steps = []
        tokens = self.gen.generate(labels, callback=lambda step, prefix: steps.append(
            (prefix.shape[1], self.decode(prefix))), **{**self.sampling, **kwargs})
        return dict(tokens=tokens, steps=steps)

    @torch.no_grad()
    def variations(self, images: torch.Tensor, labels: torch.Tensor, keep: int, num: int = 4,
                   **kwargs) -> torch.Tensor:
        """Spectral variations: keep the first ``keep`` tokens of real images (their coarse content) and let the
        generator sample the rest ``num`` times. images in [0, 1] (B, 3, H, W) -> (B, num, 3, H, W)."""
        prefix = self.encode(images, keep)
        b = images.shape[0]
        tokens = self.gen.generate(labels.repeat_interleave(num), prefix=prefix.repeat_interleave(num, 0),
                                   **{**self.sampling, **kwargs})
        return self.decode(tokens).view(b, num, *images.shape[1:])

    @torch.no_grad()
    def super_resolve(self, images: torch.Tensor, labels: torch.Tensor, mode: str = 'stride',
                      keep_cutoff: Optional[int] = None, **kwargs) -> torch.Tensor:
        """Twice the resolution, as the paper's section 4.4 builds it (and its bicubic baseline).

        ``'stride'`` / ``'patch'``: the S x S image is cut into four (S / 2) x (S / 2) sub-images (pixels
        ``(i::2, j::2)``, or the quadrants), each is up-sampled to S x S (bicubic), so it holds the DCT band below
        S / 2; it keeps the tokens whose cut-off ``w_k`` is at most ``keep_cutoff`` (default S / 2, that band)
        and the generator completes the rest for the class; the four results are interleaved (stride) or tiled
        (patch) into 2S x 2S (``mmspectral.spectral.subimages``). ``'bicubic'``: the plain bicubic up-sampling,
        Table 3's baseline. images in [0, 1] (B, 3, S, S) -> (B, 3, 2S, 2S). ``kwargs`` go to ``generate``
        (e.g. ``generator``).
        """
        if mode not in ('bicubic',) + SUBIMAGE_MODES:
            raise ValueError(f"super_resolve mode must be 'bicubic', 'stride' or 'patch', got {mode!r}.")
        b, _, s, _ = images.shape
        if mode == 'bicubic':
            return upsample(images, 2 * s)
        subs = split_subimages(images, mode).flatten(0, 1)  # (B * 4, 3, S, S), each holding the band below S / 2
        keep = self.super_resolution_prefix(keep_cutoff)
        prefix = self.encode(subs, keep)
        options = {k: v for k, v in {**self.sampling, **kwargs}.items() if k != 'num_tokens'}
        tokens = self.gen.generate(labels.repeat_interleave(4), prefix=prefix, **options)
        done = self.decode(tokens).view(b, 4, 3, s, s)
        return reassemble_subimages(done, mode)

    def super_resolution_prefix(self, band: Optional[int] = None) -> int:
        """How many leading tokens hold real content in an image that has only the DCT band below ``band``
        (default S / 2: a sub-image of S / 2 pixels up-sampled to S): those whose cut-off ``w_k <= band``. TiTok
        tokens have no band; there the same share of the N tokens is kept."""
        schedule = self.tokenizer.freq_schedule
        n, size = self.gen.num_tokens, self.tokenizer.image_size
        band = size // 2 if band is None else int(band)
        keep = sum(w <= band for w in schedule.omegas) if schedule is not None else round(n * band / size)
        return max(1, min(keep, n))
