"""A progressive image codec on spectral tokens: token ids range-coded with the generator's probabilities,
any scan prefix of a file decodes to a coarser image (docs/codec.md)."""
from .container import CodecFormatError, Header, Scan
from .progressive import (SCAN_MODES, CodecMismatchError, Decoded, decode_file, encode_images, model_hash,
                          prefix_bits, prefix_files, scan_ends_for)

__all__ = ['CodecFormatError', 'CodecMismatchError', 'Decoded', 'Header', 'Scan', 'SCAN_MODES', 'decode_file',
           'encode_images', 'model_hash', 'prefix_bits', 'prefix_files', 'scan_ends_for']
