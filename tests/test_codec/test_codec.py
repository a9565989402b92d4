"""The progressive codec (mmspectral.codec, the compress / decompress API, tools/codec.py) on the quick
start's tiny configs with random weights: files decode to exactly the tokenizer's tokens and prefix
reconstructions, every cut after a scan decodes to its prefix, the payload is within a word of the ideal code
length, other weights or other probabilities are an error and never a wrong image, and a damaged header is
refused before anything is allocated."""
import doctest
import json
import os.path as osp
import struct

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip('constriction')

from cli import run_cli  # noqa: E402
from tiny_models import GENERATOR_CONFIG, REPO_ROOT, generator, shapes  # noqa: E402


def _cuts(data):
    """Every byte length from the end of the header to the whole file."""
    from mmspectral.codec.container import unpack
    _, words = unpack(data)
    return range(len(data) - 4 * len(words), len(data) + 1)


def test_files_decode_to_the_tokens_and_every_cut_to_its_prefix(codec_models):
    from mmspectral.apis import compress, decompress
    from mmspectral.codec import CodecFormatError, decode_file
    from mmspectral.codec.container import unpack
    model = codec_models['model']
    images, labels = shapes(4)
    files = compress(model, images, labels.tolist())
    tokens = model.encode(images)
    for i, data in enumerate(files):
        full = decode_file(model, data)
        assert full.complete and torch.equal(full.tokens[0], tokens[i])
        assert torch.equal(decompress(model, data), model.decode(tokens[i:i + 1])[0])
        header, words = unpack(data)
        ends = {4 * s.words: s.tokens for s in header.scans}
        held_before = 0
        for cut in _cuts(data):
            payload = cut - (len(data) - 4 * len(words))
            held = max([t for b, t in ends.items() if b <= payload], default=0)
            if held == 0:
                with pytest.raises(CodecFormatError, match='cut before its first scan'):
                    decode_file(model, data[:cut])
                continue
            part = decode_file(model, data[:cut])
            assert part.tokens.shape[1] == held >= held_before  # the scans it holds, never fewer
            held_before = held
            assert torch.equal(part.tokens[0], tokens[i, :held])
            assert torch.equal(part.image, model.decode(tokens[i:i + 1, :held]))
        for k in (1, 5, 16):  # any prefix of a complete file
            assert torch.equal(decode_file(model, data, k).image, model.decode(tokens[i:i + 1, :k]))


def test_payload_is_within_a_word_of_the_ideal_code_length(codec_models):
    from mmspectral.apis import bits_per_image, compress, decompress
    from mmspectral.codec.container import unpack
    model = codec_models['model']
    images, labels = shapes(6, seed=3)
    for classes in (labels.tolist(), None):  # class-conditional and unconditional streams
        bits = bits_per_image(model, images, classes)
        assert bits.shape == (6, 16) and (np.diff(bits, axis=1) > 0).all()
        files = compress(model, images, classes)
        for i, data in enumerate(files):
            header, words = unpack(data)
            assert header.label == (10 if classes is None else labels[i])
            assert 32 * len(words) <= bits[i, -1] + 32 + 2  # a range coder's whole words, no more
            for scan in header.scans:  # every scan's words: its prefix's ideal bits, rounded up, plus a word
                assert 32 * scan.words <= bits[i, scan.tokens - 1] + 64
            assert torch.equal(decompress(model, data), model.decode(model.encode(images[i:i + 1]))[0])


def test_other_weights_or_other_probabilities_are_an_error_not_a_wrong_image(codec_models, monkeypatch):
    from mmspectral.apis import compress
    from mmspectral.codec import CodecMismatchError, decode_file, entropy
    model, other = codec_models['model'], codec_models['other']
    data = compress(model, shapes(1)[0], 'disk')[0]
    with pytest.raises(CodecMismatchError, match='other weights'):
        decode_file(other, data)
    # The same weights, but probabilities that differ in their last bits (another machine's kernels).
    real = entropy.probabilities

    def nudged(logits):
        return real(logits * (1 + 1e-3))

    monkeypatch.setattr(entropy, 'probabilities', nudged)
    with pytest.raises(CodecMismatchError, match='checksum'):
        decode_file(model, data)


def test_a_changed_weight_changes_the_model_hash(codec_models):
    from mmspectral.codec import model_hash
    model = codec_models['model']
    before = model_hash(model)
    param = next(model.gen.parameters())
    with torch.no_grad():
        param.view(-1)[0] += 1e-6
        try:
            assert model_hash(model) != before
        finally:
            param.view(-1)[0] -= 1e-6
    assert model_hash(model) == before or torch.isfinite(param).all()


def test_target_psnr_and_max_bytes_pick_the_prefix(codec_models):
    from mmspectral.apis import compress
    from mmspectral.codec import decode_file
    from mmspectral.evaluation.functional import psnr
    model = codec_models['model']
    images, labels = shapes(3, seed=5)
    full = [decode_file(model, d) for d in compress(model, images, labels.tolist())]
    curves = [[float(psnr(model.decode(f.tokens[:, :k]), images[i:i + 1])) for k in range(1, 17)]
              for i, f in enumerate(full)]
    target = float(np.median([c[7] for c in curves]))
    files = compress(model, images, labels.tolist(), target_psnr=target)
    for i, data in enumerate(files):
        k = decode_file(model, data).tokens.shape[1]
        reached = [j + 1 for j, v in enumerate(curves[i]) if v >= target]
        assert k == (reached[0] if reached else 16)
    whole = compress(model, images[:1], 'disk')[0]
    limit = len(whole) - 1
    cut = compress(model, images[:1], 'disk', max_bytes=limit)[0]
    assert len(cut) <= limit
    longer = compress(model, images[:1], 'disk', num_tokens=decode_file(model, cut).tokens.shape[1] + 1)[0]
    assert len(longer) > limit  # the next scan would not have fitted
    with pytest.raises(ValueError, match='first scan'):
        compress(model, images[:1], 'disk', max_bytes=20)


def test_scans_by_band_and_by_list(codec_models):
    from mmspectral.apis import codec_info, compress
    model = codec_models['model']
    images, _ = shapes(1)
    bands = codec_info(compress(model, images, 'disk', scans='bands')[0])
    omegas = list(model.codec.freq_schedule.omegas)
    assert [s['tokens'] for s in bands['scans']] == [
        i + 1 for i in range(16) if i == 15 or omegas[i + 1] != omegas[i]]
    listed = codec_info(compress(model, images, 'disk', scans=[1, 2, 4, 8], num_tokens=12)[0])
    assert [s['tokens'] for s in listed['scans']] == [1, 2, 4, 8, 12] and listed['num_tokens'] == 12
    assert listed['file_bytes'] == listed['header_bytes'] + listed['payload_bytes']


def test_group_generator_codes_and_decodes(codec_models, tmp_path):
    """p = 4 tokens a step: the step's four rows of probabilities code its four tokens."""
    from mmspectral.apis import compress
    from mmspectral.codec import decode_file
    model, _ = generator(tmp_path, codec_models['tok_ckpt'], seed=3,
                         attn_mask=dict(type='BlockCausalMask', block_size=4))
    assert model.gen.block_size == 4
    images, labels = shapes(2, seed=7)
    tokens = model.encode(images)
    for i, data in enumerate(compress(model, images, labels.tolist())):
        for cut in _cuts(data)[-12:]:
            part = decode_file(model, data[:cut])
            assert torch.equal(part.tokens[0], tokens[i, :part.tokens.shape[1]])


def test_damaged_headers_are_refused(codec_models):
    from mmspectral.apis import compress
    from mmspectral.codec import CodecFormatError, decode_file
    from mmspectral.codec.container import _FIXED, unpack
    model = codec_models['model']
    data = compress(model, shapes(1)[0], 'disk')[0]
    header_len = len(data) - 4 * len(unpack(data)[1])
    for cut in range(header_len):  # a file cut inside its header
        with pytest.raises(CodecFormatError):
            unpack(data[:cut])
    for pos in range(header_len):  # any changed header byte
        damaged = bytearray(data)
        damaged[pos] ^= 0x41
        with pytest.raises(CodecFormatError):
            unpack(bytes(damaged))
    with pytest.raises(CodecFormatError, match='after its last scan'):
        unpack(data + b'\0\0\0\0')
    with pytest.raises(CodecFormatError, match='version 9'):
        unpack(data[:4] + b'\x09' + data[5:])
    huge = bytearray(data)  # k beyond N, with a valid header checksum: refused on bounds
    struct.pack_into('<H', huge, 26, 60000)
    with pytest.raises(CodecFormatError, match='out of bounds'):
        unpack(bytes(huge[:_FIXED.size]) + bytes(8))
    with pytest.raises(TypeError, match='bytes'):
        decode_file(model, 'not bytes')
    with pytest.raises(CodecFormatError, match='Not an mmspectral codec file'):
        decode_file(model, b'')


def test_files_that_claim_too_much_are_refused_before_decoding(codec_models, monkeypatch):
    """A well-formed header that claims 10^9 codes, 65,535 tokens or pixels: refused by the model check,
    before the generator runs or anything of that size is allocated."""
    import dataclasses

    from mmspectral.apis import compress
    from mmspectral.codec import CodecMismatchError, decode_file, progressive
    from mmspectral.codec.container import pack, unpack
    model = codec_models['model']
    header, words = unpack(compress(model, shapes(1)[0], 'disk')[0])

    def never(*args, **kwargs):
        raise AssertionError('the generator ran on a file it should have refused')

    monkeypatch.setattr(progressive, '_step_path', never)
    for change in (dict(vocab_size=10 ** 9), dict(seq_len=65535), dict(height=65535, width=65535),
                   dict(label=65535)):
        claim = pack(dataclasses.replace(header, **change), words)
        with pytest.raises(CodecMismatchError, match='another kind of model|classes'):
            decode_file(model, claim)


def test_a_cut_file_says_so(codec_models):
    from mmspectral.apis import compress, decompress
    from mmspectral.apis.codec import PartialFileWarning
    model = codec_models['model']
    data = compress(model, shapes(1)[0], 'disk')[0]
    with pytest.warns(PartialFileWarning, match='holds .* of its 16 tokens'):
        decompress(model, data[:-4])


def test_bad_arguments_are_named(codec_models):
    from mmspectral.apis import compress, decompress
    model, tokenizer_only = codec_models['model'], codec_models['model'].codec
    images, _ = shapes(1)
    for kwargs, match in ((dict(num_tokens=17), 'num_tokens'), (dict(scans='octaves'), 'scans'),
                          (dict(scans=[0, 3]), 'scans'), (dict(target_psnr=-1.0), 'target_psnr'),
                          (dict(max_bytes=2.5), 'max_bytes')):
        with pytest.raises((ValueError, TypeError), match=match):
            compress(model, images, 'disk', **kwargs)
    with pytest.raises(TypeError, match='generator'):
        compress(tokenizer_only, images)
    data = compress(model, images, 'disk', num_tokens=6)[0]
    with pytest.raises(ValueError, match='holds 6 token'):
        decompress(model, data, k=7)


def test_api_docstring_examples(codec_models):
    import mmspectral.apis.codec as module
    images, _ = shapes(2)
    globs = dict(vars(module), model=codec_models['model'], images=images)
    result = doctest.testmod(module, globs=globs, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted == 3 and result.failed == 0


def test_cli_encode_decode_info(codec_models, tmp_path, capsys):
    from mmspectral.apis import from_batch
    model = codec_models['model']
    images, _ = shapes(2)
    paths = []
    for i, array in enumerate(from_batch(images, 'numpy')):
        path = str(tmp_path / f'img{i}.png')
        cv2.imwrite(path, cv2.cvtColor(array, cv2.COLOR_RGB2BGR))
        paths.append(path)
    config = osp.join(REPO_ROOT, GENERATOR_CONFIG)
    common = ['--checkpoint', codec_models['gen_ckpt'], '--out-dir', str(tmp_path / 'out')]
    opts = ['--cfg-options', f'model.tokenizer_checkpoint={codec_models["tok_ckpt"]}']
    run_cli('tools/codec.py', ['encode', config, *paths, '--class', '0', *common, *opts])
    coded = [str(tmp_path / 'out' / f'img{i}.mmsc') for i in range(2)]
    with open(coded[0], 'rb') as f:
        data = f.read()
    cut = str(tmp_path / 'cut.mmsc')
    with open(cut, 'wb') as f:
        f.write(data[:-4])
    run_cli('tools/codec.py', ['decode', config, coded[0], cut, *common, *opts])
    decoded = cv2.imread(str(tmp_path / 'out' / 'img0.png'))[..., ::-1]
    expected = from_batch(model.decode(model.encode(images[:1])), 'numpy')[0]
    assert np.array_equal(decoded, expected)
    assert osp.isfile(tmp_path / 'out' / 'cut.png')
    capsys.readouterr()
    run_cli('tools/codec.py', ['info', coded[0]])
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info['num_tokens'] == 16 and info['label'] == 0 and info['file_bytes'] == len(data)
    bad = str(tmp_path / 'bad.png')
    with open(bad, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + bytes(20))
    with pytest.raises(SystemExit, match='bad.png'):
        run_cli('tools/codec.py', ['encode', config, bad, *common, *opts])
    with pytest.raises(SystemExit, match='Not an mmspectral codec file'):
        run_cli('tools/codec.py', ['info', paths[0]])
