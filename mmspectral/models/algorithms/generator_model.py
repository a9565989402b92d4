"""``GeneratorModel``: trains a GENERATORS model on token sequences under MMEngine.

Tokens come either from a TokenDataset (extracted once with ``tools/extract_tokens.py``; inputs are (B, N)
ids) or, with ``encode_on_the_fly=True``, from images encoded by a frozen tokenizer in every step. The loss is
the cross-entropy of next-token prediction; the log also carries the loss and accuracy of each range of
positions, which shows which spectral positions are hard.
"""
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel, is_model_wrapper

from mmspectral.registry import GENERATORS, MODELS, TOKENIZERS
from mmspectral.utils import build_component
from mmspectral.utils.build import (UnknownArgumentError, accepted_arguments, effective_arguments,
                                    unknown_argument_message)
from ..generators import SAMPLING_OPTIONS, check_sampling_options, generate_tokens
from ..tokenizers.loading import (adopt_value_range, load_tokenizer, range_of, tokenizer_value_range,
                                  with_value_range)
from ..utils import keep_out_of_checkpoints
from .applications import GenerationApplicationsMixin


def size_mismatches(generator: Mapping, tokenizer: Mapping) -> List[tuple]:
    """``(key, generator's value, tokenizer's value)`` for each of ``num_tokens`` and ``vocab_size`` (the
    tokenizer's ``codebook_size``) on which a generator and the tokenizer it decodes with disagree; keys
    either side does not give are not compared."""
    out = []
    for key, theirs in (('num_tokens', tokenizer.get('num_tokens')),
                        ('vocab_size', tokenizer.get('codebook_size'))):
        mine = generator.get(key)
        if mine is not None and theirs is not None and mine != theirs:
            out.append((key, mine, theirs))
    return out


def _registered(registry, name):
    try:
        return registry.get(name) if isinstance(name, str) else name
    except Exception:  # a scoped name of a package that is not installed
        return None


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
        sampling: the default sampling settings of :meth:`sample` (cfg_scale, cfg_schedule, top_k, top_p,
            temperature, num_tokens), checked when the model is built.
        image_value_range: deprecated; the tokenizer owns its value range (``tokenizer.value_range``). A
            tokenizer config that sets none adopts this one (older configs and model folders); a different
            one is refused.
        data_preprocessor: default moves token batches to the device; with ``encode_on_the_fly``, an
            ``ImageDataPreprocessor`` with the tokenizer's value range.
        class_names: the name of each class label (``generator.num_classes`` of them), so that users ask for
            classes by name; model folders keep them in their ``config.json``. Default: none (the tools
            then read them from the training tokens' meta file).
    """

    #: arguments that name a file, for the config checks (mmspectral/engine/component_checks.py)
    path_arguments = {'tokenizer_checkpoint': 'It is the checkpoint of a trained tokenizer: train one first '
                                              '(tools/train.py TOKENIZER_CONFIG) or point the key at yours.'}

    @staticmethod
    def reads_images(args) -> bool:
        """Whether a config of this model trains on images (for the config checks): with
        ``encode_on_the_fly``; otherwise it reads token folders."""
        return bool(args.get('encode_on_the_fly'))

    def __init__(self, generator: dict, tokenizer: Optional[dict] = None,
                 tokenizer_checkpoint: Optional[str] = None, encode_on_the_fly: bool = False,
                 num_position_bins: int = 8, sampling: Optional[dict] = None,
                 image_value_range: Optional[Sequence[float]] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None,
                 class_names: Optional[Sequence[str]] = None) -> None:
        tokenizer, value_range = adopt_value_range(tokenizer, {
            'model.image_value_range': image_value_range,
            'model.data_preprocessor.value_range': range_of(data_preprocessor)})
        if data_preprocessor is None:
            data_preprocessor = dict(type='ImageDataPreprocessor') if encode_on_the_fly else \
                dict(type='BaseDataPreprocessor')
        data_preprocessor = with_value_range(data_preprocessor, value_range)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.generator = build_component(generator, GENERATORS)
        self.tokenizer = None
        self.tokenizer_checkpoint = tokenizer_checkpoint  # recorded with what it decodes (tools/sample.py)
        if tokenizer is not None:
            self.tokenizer = keep_out_of_checkpoints(load_tokenizer(tokenizer, tokenizer_checkpoint))
            for key, mine, theirs in size_mismatches(
                    dict(num_tokens=self.generator.num_tokens, vocab_size=self.generator.vocab_size),
                    dict(num_tokens=self.tokenizer.num_tokens, codebook_size=self.tokenizer.vocab_size)):
                raise ValueError(f'The generator has {key}={mine} but the tokenizer has {key}={theirs}; '
                                 f'set generator.{key}={theirs} '
                                 '(or use the tokenizer the tokens came from).')
        if encode_on_the_fly and self.tokenizer is None:
            raise ValueError('encode_on_the_fly=True needs tokenizer=... and tokenizer_checkpoint=...')
        self.encode_on_the_fly = encode_on_the_fly
        self.bins = position_bins(self.generator.num_tokens, num_position_bins)
        self.sampling = self.sampling_options(sampling or {}, where='model.sampling', defaults=False)
        self.class_names = self._check_class_names(class_names)

    def _check_class_names(self, names) -> tuple:
        if names is None:
            return ()
        count = self.generator.num_classes
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f'model.class_names must be a list of {count} non-empty strings, got {names!r}.')
        if len(names) != count or len(set(names)) != len(names):
            raise ValueError(f'model.class_names has {len(names)} names ({len(set(names))} different) but '
                             f'the generator has num_classes={count}: give one distinct name per class.')
        return tuple(names)

    @classmethod
    def check_config(cls, args: Mapping, where: str = 'model', cfg: Optional[Mapping] = None) -> List[str]:
        """The problems of a GeneratorModel config found before anything is built (the config checks call
        this): a generator whose ``num_tokens`` / ``vocab_size`` differ from its tokenizer's. Each token
        folder the config reads checks its own agreement (``TokenDataset.check_config``)."""
        gen, tok = args.get('generator'), args.get('tokenizer')
        if not isinstance(gen, Mapping) or not isinstance(tok, Mapping):
            return []
        gen_args = effective_arguments(_registered(GENERATORS, gen.get('type')), gen)
        tok_args = effective_arguments(_registered(TOKENIZERS, tok.get('type')), tok)
        return [f'{where}.generator.{key}={mine} but the tokenizer ({where}.tokenizer) has {key}={theirs}. '
                f'Set {where}.generator.{key}={theirs}, or use the tokenizer the tokens came from.'
                for key, mine, theirs in size_mismatches(gen_args, tok_args)]

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

    def sampling_options(self, overrides: Optional[Mapping[str, Any]] = None,
                         where: str = 'sampling options', defaults: bool = True) -> Dict[str, Any]:
        """The sampling settings ``{**self.sampling, **overrides}`` (``overrides`` alone without
        ``defaults``), checked before any work: every key must be an argument of the generator's
        ``generate`` (a misspelt one is named, with the closest), every value in its range
        (:func:`~mmspectral.models.generators.check_sampling_options`). The one place the config's defaults
        and a caller's settings are merged; tools call it before they write anything, :meth:`sample` on every
        call."""
        options = {**(self.sampling if defaults else {}), **(overrides or {})}
        accepted = accepted_arguments(self.gen.generate)
        for key in options:
            if accepted is not None and (key not in accepted or key in _NOT_OPTIONS):
                raise UnknownArgumentError(unknown_argument_message(
                    f'{type(self.gen).__name__}.generate', key, sorted(SAMPLING_OPTIONS), where)
                    + _SEED_HINT.get(key, ''))
        check_sampling_options(options, self.gen.num_tokens, where)
        return options

    #: the name this method had; kept for callers of earlier versions
    check_sampling = sampling_options

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, decode: bool = True, *, seed: Optional[int] = None,
               rng: Optional[torch.Generator] = None, prefix: Optional[torch.Tensor] = None,
               on_step: Optional[Callable[[int, torch.Tensor], None]] = None, pack_weights: bool = True,
               return_logits: bool = False, **options) -> Dict[str, torch.Tensor]:
        """Sample tokens for ``labels`` (B,): the one sampling surface of the package.

        Args:
            decode: also return ``images``, the decoded samples in [0, 1] (B, 3, H, W).
            seed / rng: the randomness (``rng`` a torch.Generator; ``seed`` makes one with
                :func:`~mmspectral.models.generators.make_rng`); neither: the global RNG.
            prefix: (B, k) token ids to keep; the rest is generated (variations, super-resolution).
            on_step: called as ``on_step(k, images)`` after every step with the decoded prefix of k tokens
                (coarse-to-fine previews, streaming).
            pack_weights: on the CPU, run the generator with oneDNN-packed weights
                (``SpectralARGenerator.packed``; the same tokens, about twice as fast for small batches).
            return_logits: also return the guided ``logits`` (B, n, V).
            options: sampling settings over the config's ``sampling`` (``cfg_scale``, ``top_k``, ``top_p``,
                ``temperature``, ``cfg_schedule``, ``num_tokens`` for truncated generation).

        Returns:
            a dict with ``tokens`` (B, n) and, as asked, ``images`` and ``logits``.
        """
        if 'generator' in options:  # the RNG's name in earlier versions
            warnings.warn('sample(generator=...) is deprecated; pass rng=... (or seed=...).',
                          DeprecationWarning, stacklevel=3)
            rng = options.pop('generator') if rng is None else rng
        options = self.sampling_options(options)
        callback = None if on_step is None else \
            (lambda step, tokens: on_step(tokens.shape[1], self.decode(tokens)))
        result = generate_tokens(self.gen, labels, seed=seed, rng=rng, pack_weights=pack_weights,
                                 prefix=prefix, callback=callback, return_logits=return_logits, **options)
        out = dict(result) if return_logits else dict(tokens=result)
        if decode:
            out['images'] = self.decode(out['tokens'])
        return out

    def release_packed_weights(self) -> None:
        """Free the packed weight copies that CPU sampling keeps."""
        self.gen.release_packed_weights()


#: generate's arguments that are not sampling settings: :meth:`GeneratorModel.sample` sets them.
_NOT_OPTIONS = ('labels', 'rng', 'prefix', 'callback', 'return_logits', 'choose')
_SEED_HINT = {'seed': ' A seed is not a sampling setting: pass sample(labels, seed=...) (tools: --seed).',
              'generator': ' Pass the RNG as sample(labels, rng=...).'}
