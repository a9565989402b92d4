"""Spectral tokens as a progressive image codec (docs/codec.md).

An image's token ids are range-coded with the generator's own probabilities: position i's distribution is the
generator's, given the class (or the null class) and the tokens before it, without guidance. Encoder and
decoder compute it by one code path, the generator's cached step-by-step sampler with ``choose`` feeding the
known (encoder) or the just-decoded (decoder) tokens, one image at a time, so that on the same machine and
weights they see the same float64 probabilities and constriction quantises them to the same frequencies.
A checksum of the token ids turns any difference (other weights, other kernels) into an error.
"""
import hashlib
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from mmspectral.evaluation.functional import psnr
from mmspectral.models.generators import generate_tokens
from . import container as fmt
from . import entropy

__all__ = ['CodecMismatchError', 'Decoded', 'model_hash', 'scan_ends_for', 'encode_images', 'prefix_files',
           'decode_file', 'prefix_bits', 'SCAN_MODES']

SCAN_MODES = ('tokens', 'bands')


class CodecMismatchError(ValueError):
    """A codec file does not decode with this model: other weights, another model, or a machine whose
    kernels give different probabilities."""


@dataclass
class Decoded:
    tokens: torch.Tensor       # (1, k) token ids
    image: torch.Tensor        # (1, 3, H, W) in [0, 1]
    header: fmt.Header
    complete: bool             # every coded token was in the file (not cut)


def _tensors(model):
    yield from ((f'generator.{k}', v) for k, v in model.gen.state_dict().items())
    yield from ((f'tokenizer.{k}', v) for k, v in model.codec.state_dict().items())


def model_hash(model) -> bytes:
    """The first 8 bytes of the sha256 of the generator's and tokenizer's weights (names, dtypes, shapes and
    bytes, in name order). Cached on the model until a weight changes."""
    items = sorted(_tensors(model), key=lambda kv: kv[0])
    key = tuple((name, t.data_ptr(), t._version) for name, t in items)
    cached = model.__dict__.get('_codec_model_hash')
    if cached is not None and cached[0] == key:
        return cached[1]
    h = hashlib.sha256()
    for name, t in items:
        t = t.detach().to('cpu').contiguous()
        h.update(f'{name}|{t.dtype}|{tuple(t.shape)}|'.encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    digest = h.digest()[:8]
    model.__dict__['_codec_model_hash'] = (key, digest)
    return digest


def scan_ends_for(model, num_tokens: int, scans: Union[str, Sequence[int]] = 'tokens') -> List[int]:
    """Where the scans of a k-token stream end: 'tokens' (one scan per token), 'bands' (one per frequency band
    of the tokenizer's schedule: the tokens that share a low-pass cut-off) or increasing prefix lengths."""
    if isinstance(scans, str):
        if scans == 'tokens':
            return list(range(1, num_tokens + 1))
        if scans == 'bands':
            schedule = getattr(model.codec, 'freq_schedule', None)
            if schedule is None:
                raise ValueError("scans='bands' needs a tokenizer with a frequency schedule (SpectralAR); "
                                 "this one has none (a TiTok tokenizer): use scans='tokens' or a list of "
                                 'lengths.')
            omegas = list(schedule.omegas)[:num_tokens]
            return [i + 1 for i in range(num_tokens) if i == num_tokens - 1 or omegas[i + 1] != omegas[i]]
        raise ValueError(f'scans must be one of {SCAN_MODES} or a list of prefix lengths, got {scans!r}.')
    ends = sorted({int(t) for t in scans if int(t) < num_tokens}) + [num_tokens]
    if ends[0] < 1:
        raise ValueError(f'Scan ends are prefix lengths >= 1, got {list(scans)}.')
    return ends


def _row(logits_row: torch.Tensor) -> np.ndarray:
    return entropy.probabilities(logits_row)  # one position at a time on both sides (the same float ops)


class _Eval:
    """The model in eval mode for the duration (dropout and drop-path would break determinism)."""

    def __init__(self, model) -> None:
        self.model = model

    def __enter__(self):
        self.was = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was)


def _step_path(model, label: int, num_tokens: int, choose) -> None:
    labels = torch.tensor([label], device=next(model.gen.parameters()).device)
    generate_tokens(model.gen, labels, pack_weights=True, cfg_scale=0.0, num_tokens=num_tokens, choose=choose)


def _token_probs(model, tokens: torch.Tensor, label: int, num_tokens: int) -> np.ndarray:
    """The generator's probabilities (k, V) of positions 1..k of ``tokens`` (1, N), by the step path."""
    p, rows = model.gen.block_size, []

    def choose(step, logits):
        rows.extend(_row(logits[0, j]) for j in range(logits.shape[1]))
        return tokens[:, step * p:(step + 1) * p]

    _step_path(model, label, num_tokens, choose)
    return np.stack(rows[:num_tokens])


def _header(model, digest: bytes, label: int, tokens: Sequence[int], ends, lengths, checks) -> fmt.Header:
    size = model.codec.image_size
    return fmt.Header(digest, size, size, model.gen.vocab_size, model.gen.num_tokens, label,
                      len(tokens), fmt.token_crc(tokens),
                      [fmt.Scan(t, w, c) for t, w, c in zip(ends, lengths, checks)])


class _Coded:
    """One image's range-coded tokens: the file of its first j scans for any j (what coding only their
    tokens writes: the header lists those scans and its checksum covers their tokens)."""

    def __init__(self, model, ids: torch.Tensor, label: int, ends: List[int]) -> None:
        k = ends[-1]
        probs = _token_probs(model, ids, label, k)
        self.symbols = ids[0, :k].cpu().numpy()
        self.words = entropy.encode(self.symbols, probs)
        self.lengths = entropy.scan_ends(self.words, self.symbols, probs, ends)
        self.checks = [fmt.scan_check(self.symbols[:t]) for t in ends]
        self.model, self.label, self.ends = model, label, ends
        self.digest = model_hash(model)  # once per image, not once per file of a prefix

    def file(self, num_scans: int) -> bytes:
        j, t = num_scans, self.ends[num_scans - 1]
        header = _header(self.model, self.digest, self.label, self.symbols[:t], self.ends[:j],
                         self.lengths[:j], self.checks[:j])
        return fmt.pack(header, self.words)


@torch.no_grad()
def prefix_files(model, images: torch.Tensor, labels: Sequence[int], *, num_tokens: Optional[int] = None,
                 scans: Union[str, Sequence[int]] = 'tokens'):
    """Every image's files of its first 1, 2, ... scans: ``(scan ends, [[bytes per scan] per image])``
    (the rate-distortion harness reads a whole curve from one coding pass)."""
    ends = scan_ends_for(model, model.gen.num_tokens if num_tokens is None else int(num_tokens), scans)
    with _Eval(model):
        tokens = model.encode(images)
        coded = [_Coded(model, tokens[i:i + 1], int(labels[i]), ends) for i in range(len(images))]
    return ends, [[c.file(j) for j in range(1, len(ends) + 1)] for c in coded]


@torch.no_grad()
def encode_images(model, images: torch.Tensor, labels: Sequence[int], *, num_tokens: Optional[int] = None,
                  scans: Union[str, Sequence[int]] = 'tokens', target_psnr: Optional[float] = None,
                  max_bytes: Optional[int] = None) -> List[bytes]:
    """Images (B, 3, H, W) in [0, 1] at the tokenizer's size and one label each (the null class for an
    unconditional stream) -> one codec file each.

    ``num_tokens`` codes only a prefix; ``target_psnr`` keeps each image's shortest scan prefix whose decoded
    image reaches that PSNR against the input (all coded tokens when none does); ``max_bytes`` the longest
    that fits in that many bytes (an error when not even the first scan fits)."""
    ends = scan_ends_for(model, model.gen.num_tokens if num_tokens is None else int(num_tokens), scans)
    with _Eval(model):
        tokens = model.encode(images)  # (B, N)
        quality = None
        if target_psnr is not None:
            quality = torch.stack([psnr(model.decode(tokens[:, :t]), images) for t in ends], dim=1)  # (B, S)
        files = []
        for i in range(len(images)):
            coded = _Coded(model, tokens[i:i + 1], int(labels[i]), ends)
            last = len(ends)
            if quality is not None:
                reached = (quality[i] >= target_psnr).nonzero()
                last = int(reached[0]) + 1 if len(reached) else len(ends)
            data = coded.file(last)
            if max_bytes is not None:
                while len(data) > max_bytes and last > 1:
                    last -= 1
                    data = coded.file(last)
                if len(data) > max_bytes:
                    raise ValueError(f'Image {i}: even its first scan ({ends[0]} token(s)) takes {len(data)} '
                                     f'bytes, more than max_bytes={max_bytes}.')
            files.append(data)
    return files


def _check_model(model, header: fmt.Header) -> None:
    gen, size = model.gen, model.codec.image_size
    theirs = dict(vocab_size=header.vocab_size, num_tokens=header.seq_len, image_size=header.height)
    mine = dict(vocab_size=gen.vocab_size, num_tokens=gen.num_tokens, image_size=size)
    differ = [f'{key} {theirs[key]} (this model: {mine[key]})' for key in mine if mine[key] != theirs[key]]
    if differ or header.width != header.height:
        raise CodecMismatchError(f'The file was coded by another kind of model: {", ".join(differ)}. Decode '
                                 'it with the model folder that encoded it.')
    if header.label > gen.num_classes:
        raise CodecMismatchError(f'The file\'s class {header.label} is outside this generator\'s '
                                 f'{gen.num_classes} classes (+ the null class).')
    mine_hash = model_hash(model)
    if header.model_hash != mine_hash:
        raise CodecMismatchError(f'The file was coded with other weights (model hash '
                                 f'{header.model_hash.hex()}, this model {mine_hash.hex()}): decode it with '
                                 'the model folder that encoded it.')


@torch.no_grad()
def decode_file(model, data: bytes, k: Optional[int] = None) -> Decoded:
    """A codec file (whole, or cut anywhere after its header) -> its first ``k`` tokens (default: all it
    holds) and their image."""
    header, words = fmt.unpack(data)
    _check_model(model, header)
    usable = [s for s in header.scans if s.words <= len(words)]
    if not usable:
        need = 4 * header.scans[0].words
        raise fmt.CodecFormatError(f'The file was cut before its first scan ends (it holds {4 * len(words)} '
                                   f'payload bytes, the first scan needs {need}).')
    scan = usable[-1]
    if k is not None and not 1 <= k <= scan.tokens:
        where = 'coded' if scan.tokens == header.num_tokens else 'left in this cut file'
        raise ValueError(f'k={k}: the file holds {scan.tokens} token(s) {where}; pass 1 <= k <= '
                         f'{scan.tokens}.')
    gen, p = model.gen, model.gen.block_size
    out = torch.zeros(1, gen.num_tokens, dtype=torch.long, device=next(gen.parameters()).device)
    step_decoder = entropy.StepDecoder(words[:scan.words])

    def choose(step, logits):
        for j in range(logits.shape[1]):
            pos = step * p + j
            if pos < scan.tokens:
                out[0, pos] = step_decoder(_row(logits[0, j]))
        return out[:, step * p:(step + 1) * p]

    with _Eval(model):
        _step_path(model, header.label, scan.tokens, choose)
        ids = out[0, :scan.tokens].cpu().numpy()
        complete = scan.tokens == header.num_tokens
        if fmt.scan_check(ids) != scan.check or (complete and fmt.token_crc(ids) != header.token_crc):
            raise CodecMismatchError(
                'The decoded tokens do not match the file\'s checksum: the probabilities differ from the '
                'encoder\'s (the same weights on a machine whose kernels round differently, or a damaged '
                'payload). Decode on the machine that encoded it (docs/codec.md, determinism).')
        n = scan.tokens if k is None else int(k)
        tokens = out[:, :n]
        image = model.decode(tokens)
    return Decoded(tokens, image, header, complete)


@torch.no_grad()
def prefix_bits(model, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The ideal code length in bits of every prefix (B, N): entry [b, k - 1] is ``-log2 p(s_1..s_k | class)``
    of image b's tokens under the generator (teacher-forced, no guidance)."""
    with _Eval(model):
        tokens = model.encode(images)
        logits = model.gen(tokens, labels.to(tokens.device))
        return entropy.ideal_bits(logits, tokens).cumsum(dim=1)
