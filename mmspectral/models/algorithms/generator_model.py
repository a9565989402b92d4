"""``GeneratorModel``: trains a GENERATORS model on token sequences under MMEngine.

Tokens come either from a TokenDataset (extracted once with ``tools/extract_tokens.py``; inputs are (B, N)
ids) or, with ``encode_on_the_fly=True``, from images encoded by a frozen tokenizer in every step. The loss is
the cross-entropy of next-token prediction; the log also carries the loss and accuracy of each range of
positions, which shows which spectral positions are hard.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel, is_model_wrapper

from mmspectral.registry import GENERATORS, MODELS
from mmspectral.utils import build_component
from mmspectral.utils.build import UnknownArgumentError, accepted_arguments, unknown_argument_message
from ..generators import SAMPLING_OPTIONS, check_sampling_options
from ..tokenizers.loading import adopt_value_range, load_tokenizer, tokenizer_value_range
from ..utils import keep_out_of_checkpoints
from .applications import GenerationApplicationsMixin


def position_bins(num_tokens: int, num_bins: int) -> List[range]:
    """Split positions 0..N-1 into ``num_bins`` contiguous ranges (fewer if N is small)."""
    num_bins = max(1, min(num_bins, num_tokens))
    edges = [round(i * num_tokens / num_bins) for i in range(num_bins + 1)]
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:])]


@MODELS.register_module()
class GeneratorModel(GenerationApplicationsMixin, BaseModel):
    """Next-token training of an autoregressive generator over a tokenizer's 1D tokens.

    Args:
        generator: a GENERATORS config.
        tokenizer: optional TOKENIZERS config of the tokenizer the tokens come from; needed to decode samples
            and for ``encode_on_the_fly``. Its ``num_tokens`` and ``vocab_size`` must match the generator's.
        tokenizer_checkpoint: the trained tokenizer (a TokenizerModel checkpoint), loaded frozen.
        encode_on_the_fly: inputs are images, encoded by the frozen tokenizer in every step.
        num_position_bins: ranges of positions whose loss / accuracy are logged separately.
        sampling: keyword arguments of ``generator.generate`` used by ``sample`` (cfg_scale, top_k, ...).
        image_value_range: deprecated; the tokenizer owns its value range (``tokenizer.value_range``). A
            tokenizer config that sets none adopts this one (older configs and model folders); a different
            one is refused.
        data_preprocessor: default moves token batches to the device; with ``encode_on_the_fly``, an
            ``ImageDataPreprocessor`` with the tokenizer's value range.
    """

    def __init__(self, generator: dict, tokenizer: Optional[dict] = None,
                 tokenizer_checkpoint: Optional[str] = None, encode_on_the_fly: bool = False,
                 num_position_bins: int = 8, sampling: Optional[dict] = None,
                 image_value_range: Optional[Sequence[float]] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        tokenizer, value_range = adopt_value_range(tokenizer, {
            'model.image_value_range': image_value_range,
            'model.data_preprocessor.value_range': (data_preprocessor or {}).get('value_range')
            if isinstance(data_preprocessor, Mapping) else None})
        if data_preprocessor is None:
            data_preprocessor = dict(type='ImageDataPreprocessor', value_range=value_range) \
                if encode_on_the_fly else dict(type='BaseDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.generator = build_component(generator, GENERATORS)
        self.tokenizer = None
        self.tokenizer_checkpoint = tokenizer_checkpoint  # recorded with what it decodes (tools/sample.py)
        if tokenizer is not None:
            self.tokenizer = keep_out_of_checkpoints(load_tokenizer(tokenizer, tokenizer_checkpoint))
            for key, mine, theirs in (('num_tokens', self.generator.num_tokens, self.tokenizer.num_tokens),
                                      ('vocab_size', self.generator.vocab_size, self.tokenizer.vocab_size)):
                if mine != theirs:
                    raise ValueError(f'The generator has {key}={mine} but the tokenizer has {key}={theirs}; '
                                     f'set generator.{key}={theirs} '
                                     '(or use the tokenizer the tokens came from).')
        if encode_on_the_fly and self.tokenizer is None:
            raise ValueError('encode_on_the_fly=True needs tokenizer=... and tokenizer_checkpoint=...')
        self.encode_on_the_fly = encode_on_the_fly
        self.bins = position_bins(self.generator.num_tokens, num_position_bins)
        self.sampling = {}
        self.sampling = self.check_sampling(sampling or {}, where='model.sampling')

    @property
    def codec(self):
        """The frozen tokenizer network that encodes and decodes images (what inference uses)."""
        if self.tokenizer is None:
            raise RuntimeError('Decoding needs the tokenizer: set tokenizer=... and tokenizer_checkpoint=...')
        return self.tokenizer

    @property
    def image_value_range(self):
        """The tokenizer's ``value_range`` (kept for older callers)."""
        return tokenizer_value_range(self.tokenizer)

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
        return self.codec.decode_images(tokens)

    def encode(self, images: torch.Tensor, num_tokens: Optional[int] = None) -> torch.Tensor:
        """Images in [0, 1] (B, 3, H, W) -> token ids (B, k) with the frozen tokenizer."""
        return self.codec.encode_images(images, num_tokens)

    def check_sampling(self, overrides: Optional[Mapping[str, Any]] = None,
                       where: str = 'sampling options') -> Dict[str, Any]:
        """The sampling settings ``{**self.sampling, **overrides}``, checked before any work: every key must
        be an argument of the generator's ``generate`` (a misspelt one is named, with the closest), every
        value in its range (:func:`~mmspectral.models.generators.check_sampling_options`). Tools call it
        before they write anything; ``sample`` calls it too."""
        options = {**self.sampling, **(overrides or {})}
        accepted = accepted_arguments(self.gen.generate)
        for key in options:
            if accepted is not None and (key not in accepted or key == 'labels'):
                raise UnknownArgumentError(unknown_argument_message(
                    f'{type(self.gen).__name__}.generate', key, sorted(SAMPLING_OPTIONS), where))
        check_sampling_options(options, self.gen.num_tokens, where)
        return options

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, decode: bool = True, **kwargs) -> Dict[str, torch.Tensor]:
        """Generate tokens for ``labels`` with the configured sampling settings (overridable by ``kwargs``,
        e.g. ``num_tokens`` for truncated generation) and, with ``decode``, the images in [0, 1]."""
        tokens = self.gen.generate(labels, **self.check_sampling(kwargs))
        out = dict(tokens=tokens)
        if decode:
            out['images'] = self.decode(tokens)
        return out
