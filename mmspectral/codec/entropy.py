"""Range coding of token ids with per-token categorical models (``constriction``'s range coder; no coder of
our own). Probabilities come from logits in float64 and are quantised by constriction's deterministic
``Categorical(perfect=False)``: the same logits give the same integer frequencies on both sides."""
from typing import List, Sequence

import numpy as np
import torch

from mmspectral.utils.optional import require

__all__ = ['require_constriction', 'probabilities', 'encode', 'scan_ends', 'decode_some', 'StepDecoder',
           'ideal_bits']


def require_constriction():
    return require('constriction', 'The progressive codec (its range coder)', "'constriction>=0.4'")


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """Logits (..., V) -> probabilities (..., V) in float64 (the softmax both encoder and decoder use)."""
    x = logits.detach().to('cpu', torch.float64).numpy()
    x = np.exp(x - x.max(axis=-1, keepdims=True))
    return x / x.sum(axis=-1, keepdims=True)


def _family():
    return require_constriction().stream.model.Categorical(perfect=False)


def encode(tokens: Sequence[int], probs: np.ndarray) -> np.ndarray:
    """Token ids (k,) with their probabilities (k, V) -> the range coder's words (uint32)."""
    c = require_constriction()
    encoder = c.stream.queue.RangeEncoder()
    encoder.encode(np.asarray(tokens, dtype=np.int32), _family(), np.ascontiguousarray(probs))
    return encoder.get_compressed()


def decode_some(words: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Decode ``len(probs)`` tokens from the first words of a stream (a cut stream decodes as if padded)."""
    c = require_constriction()
    decoder = c.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
    return np.asarray(decoder.decode(_family(), np.ascontiguousarray(probs)), dtype=np.int64)


def scan_ends(words: np.ndarray, tokens: Sequence[int], probs: np.ndarray, ends: Sequence[int]) -> List[int]:
    """For each scan end ``t`` (increasing), the fewest leading words of ``words`` from which the first ``t``
    tokens decode exactly; found by decoding, so the guarantee holds by construction."""
    tokens = np.asarray(tokens, dtype=np.int64)
    out, length = [], 0
    for t in ends:
        while not np.array_equal(decode_some(words[:length], probs[:t]), tokens[:t]):
            length += 1
            if length > len(words):
                raise RuntimeError(f'The range coder\'s stream does not decode its first {t} tokens.')
        out.append(length)
    return out


class StepDecoder:
    """Decodes one token at a time as the generator produces each position's probabilities."""

    def __init__(self, words: np.ndarray) -> None:
        c = require_constriction()
        self._decoder = c.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
        self._family = _family()

    def __call__(self, probs_row: np.ndarray) -> int:
        return int(self._decoder.decode(self._family, np.ascontiguousarray(probs_row[None]))[0])


def ideal_bits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """-log2 p of each token under float64 softmax: logits (B, n, V), tokens (B, n) -> bits (B, n)."""
    logp = torch.log_softmax(logits.double(), dim=-1).gather(-1, tokens[..., None].long())[..., 0]
    return -logp / np.log(2.0)
