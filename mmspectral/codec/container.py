"""The progressive codec's file format (version 1): a fixed header, a scan table, a header checksum, then the
range coder's 32-bit words. Every field is checked against its bounds before anything is allocated.

Layout (little-endian; docs/codec.md)::

    offset size  field
    0      4     magic b'MMSC'
    4      1     version (1)
    5      1     flags (0; reserved)
    6      8     model hash: the first 8 bytes of the sha256 of the generator's and tokenizer's weights
    14     2     image height     16  2  image width (the tokenizer's resolution)
    18     4     vocabulary size V
    22     2     N, the model's sequence length
    24     2     class label (the null class N_cls for an unconditional stream)
    26     2     k, tokens coded (1..N)
    28     2     S, scans (1..k)
    30     4     crc32 of the k token ids (each as a little-endian uint16)
    34     ...   S scan entries: varint token count added by the scan, varint words added by the scan,
                 2 bytes: the low 16 bits of the crc32 of all token ids up to the scan's end
    ...    4     crc32 of every header byte before it
    ...    4*W   payload: W range-coder words (uint32, little-endian)

Scan j ends after token ``t_j`` and word ``w_j``: the first ``w_j`` words decode the first ``t_j`` tokens
exactly (checked when the file is written), so a file cut anywhere decodes the scans whose words it holds.
"""
import struct
import zlib
from dataclasses import dataclass, field
from typing import List, Sequence

import numpy as np

__all__ = ['MAGIC', 'VERSION', 'CodecFormatError', 'Header', 'Scan', 'pack', 'unpack', 'token_crc',
           'scan_check']

MAGIC = b'MMSC'
VERSION = 1
_FIXED = struct.Struct('<4sBB8sHHIHHHHI')
#: a varint of this many bytes holds any value up to 2**35 - 1, far above every bound of the format
_MAX_VARINT = 5


class CodecFormatError(ValueError):
    """The bytes are not a valid mmspectral codec file (wrong magic, version, a field out of bounds, a
    damaged header)."""


@dataclass
class Scan:
    """The end of one scan: ``tokens`` tokens decoded from the first ``words`` payload words, and the low 16
    bits of the crc32 of those tokens."""
    tokens: int
    words: int
    check: int


@dataclass
class Header:
    model_hash: bytes
    height: int
    width: int
    vocab_size: int
    seq_len: int
    label: int
    num_tokens: int
    token_crc: int
    scans: List[Scan] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(format=f'mmspectral codec v{VERSION}', model_hash=self.model_hash.hex(),
                    height=self.height, width=self.width, vocab_size=self.vocab_size, seq_len=self.seq_len,
                    label=self.label, num_tokens=self.num_tokens, token_crc=f'{self.token_crc:08x}',
                    scans=[dict(tokens=s.tokens, words=s.words, bytes=4 * s.words) for s in self.scans])


def token_crc(tokens: Sequence[int]) -> int:
    """crc32 of token ids, each written as a little-endian uint16 (so the value does not depend on the
    array's dtype)."""
    return zlib.crc32(np.asarray(tokens, dtype='<u2').tobytes()) & 0xFFFFFFFF


def scan_check(tokens: Sequence[int]) -> int:
    return token_crc(tokens) & 0xFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int, what: str):
    value = 0
    for i in range(_MAX_VARINT):
        if pos + i >= len(data):
            raise CodecFormatError(f'The file ends inside its scan table ({what}): it is cut before its '
                                   'header is complete.')
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise CodecFormatError(f'Scan table entry {what} is longer than {_MAX_VARINT} bytes: a damaged file.')


def pack(header: Header, words: np.ndarray) -> bytes:
    """Header and payload words -> the file's bytes."""
    if len(header.scans) == 0 or header.scans[-1].tokens != header.num_tokens:
        raise ValueError('The scans must end at the last coded token.')
    if header.scans[-1].words > len(words):
        raise ValueError('The last scan needs more words than the payload has.')
    head = bytearray(_FIXED.pack(MAGIC, VERSION, 0, header.model_hash, header.height, header.width,
                                 header.vocab_size, header.seq_len, header.label, header.num_tokens,
                                 len(header.scans), header.token_crc))
    tokens = words_so_far = 0
    for scan in header.scans:
        head += _varint(scan.tokens - tokens) + _varint(scan.words - words_so_far)
        head += struct.pack('<H', scan.check)
        tokens, words_so_far = scan.tokens, scan.words
    head += struct.pack('<I', zlib.crc32(bytes(head)) & 0xFFFFFFFF)
    return bytes(head) + np.asarray(words[:header.scans[-1].words], dtype='<u4').tobytes()


def unpack(data: bytes):
    """The file's bytes -> ``(header, payload words)``. The payload may be shorter than the last scan needs
    (a cut file); the caller decodes the scans it holds."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f'A codec file is bytes, got {type(data).__name__}.')
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise CodecFormatError(f'Not an mmspectral codec file: it starts with {data[:4]!r}, not {MAGIC!r}.')
    if len(data) < _FIXED.size + 4:
        raise CodecFormatError(f'The file has {len(data)} bytes, fewer than its {_FIXED.size + 4}-byte fixed '
                               'header: it was cut before its header ends.')
    (_, version, flags, model_hash, height, width, vocab, seq_len, label, num_tokens, num_scans,
     crc) = _FIXED.unpack_from(data)
    if version != VERSION:
        raise CodecFormatError(f'Codec format version {version}; this mmspectral reads version {VERSION}. '
                               'Decode it with the mmspectral version that wrote it.')
    if flags:
        raise CodecFormatError(f'Unknown flags {flags:#04x} in a version-1 file: a damaged file.')
    bounds = (('height', height > 0), ('width', width > 0), ('vocab_size', vocab >= 2),
              ('seq_len', seq_len >= 1), ('num_tokens', 1 <= num_tokens <= seq_len),
              ('scans', 1 <= num_scans <= num_tokens))
    problems = [name for name, ok in bounds if not ok]
    if problems:
        raise CodecFormatError(f'Header fields out of bounds: {", ".join(problems)} (height {height}, width '
                               f'{width}, V {vocab}, N {seq_len}, k {num_tokens}, scans {num_scans}).')
    pos, scans, tokens, words = _FIXED.size, [], 0, 0
    for j in range(num_scans):
        added, pos = _read_varint(data, pos, f'{j + 1} tokens')
        more_words, pos = _read_varint(data, pos, f'{j + 1} words')
        if pos + 2 > len(data):
            raise CodecFormatError('The file ends inside its scan table: it is cut before its header ends.')
        (check,) = struct.unpack_from('<H', data, pos)
        pos += 2
        tokens, words = tokens + added, words + more_words
        if added < 1 or tokens > num_tokens:
            raise CodecFormatError(f'Scan {j + 1} ends at token {tokens} (after {tokens - added}): scans '
                                   f'must add at least one token and end at k = {num_tokens}.')
        scans.append(Scan(tokens, words, check))
    if tokens != num_tokens:
        raise CodecFormatError(f'The scans end at token {tokens}, the header says k = {num_tokens}.')
    if pos + 4 > len(data):
        raise CodecFormatError('The file ends before its header checksum: it is cut before its header ends.')
    (head_crc,) = struct.unpack_from('<I', data, pos)
    if zlib.crc32(data[:pos]) & 0xFFFFFFFF != head_crc:
        raise CodecFormatError('The header checksum does not match: the file is damaged.')
    pos += 4
    payload = data[pos:]
    if len(payload) > 4 * scans[-1].words:
        extra = len(payload) - 4 * scans[-1].words
        raise CodecFormatError(f'The file has {extra} bytes after its last scan: it was damaged or two files '
                               'were joined.')
    words_held = np.frombuffer(payload[:len(payload) // 4 * 4], dtype='<u4').astype(np.uint32)
    return Header(model_hash, height, width, vocab, seq_len, label, num_tokens, crc, scans), words_held
