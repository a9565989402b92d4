"""The progressive codec on image files (docs/codec.md).

    python tools/codec.py encode MODEL IMAGE [IMAGE ...] --out-dir DIR [--class NAME_OR_INDEX]
        [--num-tokens K] [--scans tokens|bands|1,2,4,8] [--target-psnr DB] [--max-bytes N]
    python tools/codec.py decode MODEL FILE [FILE ...] --out-dir DIR [--k K]
    python tools/codec.py info FILE [FILE ...]

MODEL is a generator model folder (``save_pretrained`` / the quick start's ``models/generator``), or a config
with ``--checkpoint``. ``encode`` writes ``DIR/<image stem>.mmsc``; ``decode`` writes ``DIR/<file stem>.png``
(a file cut after any scan decodes to its coarser image); ``info`` prints each header as JSON. Images are
resized and centre-cropped to the tokenizer's size; without ``--class`` the null class codes them
(an unconditional stream). ``--cfg-options`` overrides a config's keys.
"""
import argparse
import json
import os
import os.path as osp
import sys
import warnings

from mmengine.config import DictAction

from mmspectral.cli import existing_file, existing_path, positive_float, positive_int


def scan_list(text: str):
    if text in ('tokens', 'bands'):
        return text
    try:
        ends = [int(t) for t in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use 'tokens', 'bands' or prefix lengths such as 1,2,4,8")
    if any(t < 1 for t in ends):
        raise argparse.ArgumentTypeError(f'{text!r}: prefix lengths are >= 1')
    return ends


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Progressive image codec on spectral tokens.')
    sub = parser.add_subparsers(dest='command', required=True)
    for name in ('encode', 'decode'):
        p = sub.add_parser(name)
        p.add_argument('model', type=existing_path,
                       help='generator model folder, or a config (+ --checkpoint)')
        p.add_argument('inputs', nargs='+', type=existing_file,
                       help='images' if name == 'encode' else '.mmsc files')
        p.add_argument('--out-dir', required=True)
        p.add_argument('--checkpoint', type=existing_file, default=None)
        p.add_argument('--device', default='cpu')
        p.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                       help='config overrides (a config, not a model folder)')
    enc = sub.choices['encode']
    enc.add_argument('--class', dest='cls', default=None,
                     help='class name or index (default: the null class)')
    enc.add_argument('--num-tokens', type=positive_int, default=None)
    enc.add_argument('--scans', type=scan_list, default='tokens')
    enc.add_argument('--target-psnr', type=positive_float, default=None)
    enc.add_argument('--max-bytes', type=positive_int, default=None)
    sub.choices['decode'].add_argument('--k', type=positive_int, default=None,
                                       help='decode the first k tokens')
    info = sub.add_parser('info')
    info.add_argument('inputs', nargs='+', type=existing_file)
    return parser.parse_args(argv)


def _read(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _write(path: str, data: bytes) -> None:
    from mmspectral.fileio import atomic_write
    with atomic_write(path, 'wb') as f:
        f.write(data)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmspectral.apis import codec_info
    from mmspectral.codec import CodecFormatError, CodecMismatchError
    if args.command == 'info':
        for path in args.inputs:
            try:
                print(json.dumps(dict(file=path, **codec_info(_read(path)))))
            except CodecFormatError as exc:
                sys.exit(f'{path}: {exc}')
        return 0
    import cv2

    from mmspectral.apis import compress, decompress, from_batch, init_generator
    from mmspectral.apis.codec import PartialFileWarning
    from mmspectral.datasets import CorruptImageError
    from mmspectral.datasets.transforms import decode_image
    model = init_generator(args.model, args.checkpoint, device=args.device, cfg_options=args.cfg_options)
    os.makedirs(args.out_dir, exist_ok=True)
    for path in args.inputs:
        stem = osp.splitext(osp.basename(path))[0]
        try:
            if args.command == 'encode':
                cls = None if args.cls is None else int(args.cls) if args.cls.isdigit() else args.cls
                data = compress(model, decode_image(_read(path), path), cls, num_tokens=args.num_tokens,
                                scans=args.scans, target_psnr=args.target_psnr, max_bytes=args.max_bytes)[0]
                out = osp.join(args.out_dir, stem + '.mmsc')
                _write(out, data)
                print(f'{path} -> {out} ({len(data)} bytes, {codec_info(data)["num_tokens"]} tokens)')
            else:
                data = _read(path)
                info = codec_info(data)
                with warnings.catch_warnings():  # a cut file is said below
                    warnings.simplefilter('ignore', PartialFileWarning)
                    image = decompress(model, data, k=args.k, output='tensor')
                array = from_batch(image[None], 'numpy')[0]
                ok, png = cv2.imencode('.png', cv2.cvtColor(array, cv2.COLOR_RGB2BGR))
                out = osp.join(args.out_dir, stem + '.png')
                _write(out, png.tobytes())
                held = info['scans'][info['scans_held'] - 1]['tokens'] if info['scans_held'] else 0
                cut = '' if held == info['num_tokens'] else \
                    f'; a cut file: {held} of its {info["num_tokens"]} tokens'
                print(f'{path} -> {out} ({args.k or held} tokens{cut})')
        except (CorruptImageError, CodecFormatError, CodecMismatchError, ValueError) as exc:
            sys.exit(f'{path}: {exc}')
    return 0


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)
