"""Rate-distortion of the progressive codec against JPEG / WebP / AVIF / JPEG XL / JPEG 2000 (docs/codec.md).

    python tools/analysis/rate_distortion.py MODEL [MODEL ...] --out-dir DIR [--names A B]
        [--num-images 100] [--seed 2] [--class-set coarse] [--probe PATH] [--image-dir DIR]
        [--unconditional] [--photos] [--codecs JPEG WebP ...]

MODEL: generator model folders (the quick start's ``models/generator``), each coded with its own tokenizer
and probabilities. Images: held-out EmbeddedShapes images (``--seed 2`` is the test split's; labels
``i % 10``) at the tokenizer's size, or the images of ``--image-dir`` (no labels, coded with the null class).
``--probe``: an EmbeddedShapes probe (tools/train_probe.py) whose class accuracy is reported per point.
``--photos``: the classic codecs also on 64 px crops of the photographs scikit-image bundles (a reference any
machine reproduces). Writes ``DIR/rate_distortion.{md,json,png}`` (and ``photos.*``); prints the table.
"""
import argparse
import os.path as osp

from mmspectral.cli import existing_file, existing_path, non_negative_int, output_folder, positive_int

CODEC_NAMES = ('JPEG', 'WebP', 'AVIF', 'JPEG XL', 'JPEG 2000')
#: photographs scikit-image bundles, and the corner of each 64 px crop (the subject, not the background)
PHOTOS = (('astronaut', (60, 170)), ('coffee', (120, 200)), ('chelsea', (80, 120)), ('rocket', (200, 280)),
          ('camera', (100, 200)), ('retina', (400, 420)), ('hubble_deep_field', (200, 200)),
          ('immunohistochemistry', (250, 250)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Rate-distortion of the progressive codec and the classic codecs.')
    parser.add_argument('models', nargs='*', type=existing_path, help='generator model folders')
    parser.add_argument('--out-dir', type=output_folder, required=True)
    parser.add_argument('--names', nargs='+', default=None, help='a name per model (default: folder names)')
    parser.add_argument('--num-images', type=positive_int, default=100)
    parser.add_argument('--seed', type=non_negative_int, default=2,
                        help='EmbeddedShapes split seed (2: the test split)')
    parser.add_argument('--class-set', default='coarse', choices=['coarse', 'fine'])
    parser.add_argument('--image-size', type=positive_int, default=64,
                        help='image size without a model (the models use their tokenizer\'s)')
    parser.add_argument('--probe', type=existing_file, default=None)
    parser.add_argument('--image-dir', type=existing_path, default=None)
    parser.add_argument('--unconditional', action='store_true', help='code with the null class')
    parser.add_argument('--photos', action='store_true')
    parser.add_argument('--table4-work-dir', type=existing_path, default=None,
                        help='a finished tools/analysis/table4_gap.py work dir: the ideal code length of '
                        'its rows\' prefixes (reference generators) against their PSNR, and the classic '
                        'codecs on the same held-out images')
    parser.add_argument('--table4-seeds', type=non_negative_int, nargs='+', default=[0, 1],
                        help='the tokenizer seeds of --table4-work-dir to average')
    parser.add_argument('--codecs', nargs='+', choices=CODEC_NAMES, default=list(CODEC_NAMES))
    parser.add_argument('--timing', type=non_negative_int, default=0, metavar='N',
                        help='also time coding, decoding and sampling on N images, one at a time')
    args = parser.parse_args(argv)
    if args.names and len(args.names) != len(args.models):
        parser.error(f'--names gives {len(args.names)} names for {len(args.models)} models')
    if not args.models and not args.photos and not args.table4_work_dir:
        parser.error('pass a model folder, --table4-work-dir or --photos')
    return args


def _image_dir(path, size):
    import glob

    from mmspectral.apis import to_batch
    from mmspectral.datasets.transforms import decode_image
    files = sorted(f for f in glob.glob(osp.join(path, '*')) if osp.isfile(f))
    if not files:
        raise SystemExit(f'--image-dir {path}: no files')
    arrays = []
    for f in files:
        with open(f, 'rb') as handle:
            arrays.append(decode_image(handle.read(), f))
    return to_batch(arrays, size)[0]


def photos(size):
    import numpy as np
    import skimage.data
    import torch
    crops = []
    for name, (top, left) in PHOTOS:
        image = getattr(skimage.data, name)()
        image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
        crops.append(image[top:top + size, left:left + size])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255


def _report(out_dir, stem, curves, title, meta, anchor='JPEG', rate='bpp_file'):
    from mmspectral.analysis.rate_distortion import bd_rates, plot_curves, report_table
    from mmspectral.fileio import write_report
    bd = bd_rates(curves, anchor, rate) if anchor in curves else {}
    table = report_table(curves, bd, title, anchor, rate)
    write_report(out_dir, stem, table,
                 dict(meta, curves=curves, bd_rate=dict(anchor=anchor, rate=rate, **bd)))
    plot_curves(curves, osp.join(out_dir, f'{stem}.png'), title, rate)
    print(table)


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmspectral.analysis.rate_distortion import classic_curve, codec_speed, spectral_curve
    from mmspectral.analysis.speed import cpu_description
    from mmspectral.apis import init_generator
    from mmspectral.evaluation.embedded_classifier import load_shapes_classifier, render_batch
    models = [init_generator(m) for m in args.models]
    sizes = {m.codec.image_size for m in models} or {args.image_size}
    if len(sizes) != 1:
        raise SystemExit(f'The models code different image sizes {sorted(sizes)}: compare them in separate '
                         'runs.')
    size = sizes.pop()
    probe = None if args.probe is None else load_shapes_classifier(args.probe, size, args.class_set)[0]
    meta = dict(cpu=cpu_description(), torch=torch.__version__, image_size=size)
    if args.models:
        if args.image_dir:
            images, labels = _image_dir(args.image_dir, size), None
            source = f'the images of {args.image_dir}'
        else:
            images, labels = render_batch(range(args.num_images), size, seed=args.seed, num_classes=10,
                                          class_set=args.class_set)
            source = f'{args.num_images} EmbeddedShapes images ({args.class_set}, seed {args.seed})'
        names = args.names or [osp.basename(osp.normpath(m)) for m in args.models]
        curves = {}
        for name, model in zip(names, models):
            curves[name] = spectral_curve(model, images, labels, probe, conditional=not args.unconditional,
                                          name=name)
        for codec in args.codecs:
            curves[codec] = classic_curve(codec, images, labels, probe)
        speed = {}
        if args.timing:
            timing_labels = labels if labels is not None else torch.zeros(len(images), dtype=torch.long)
            for name, model in zip(names, models):
                speed[name] = codec_speed(model, images[:args.timing], timing_labels[:args.timing], repeats=2)
                print(f'{name}: ' + ', '.join(f'{k} {v:.4f}' for k, v in speed[name].items()
                                              if isinstance(v, float)) + ' (s per image)')
        _report(args.out_dir, 'rate_distortion', curves, f'{source}, {size} px',
                dict(meta, images=source, models=dict(zip(names, args.models)),
                     conditional=not args.unconditional, speed=speed))
    if args.table4_work_dir:
        import numpy as np

        from mmspectral.analysis.rate_distortion import TABLE4_ROWS, table4_ideal_curves
        curves = table4_ideal_curves(args.table4_work_dir, seeds=args.table4_seeds)
        with np.load(osp.join(args.table4_work_dir, 'images.npz')) as data:
            held = torch.from_numpy(data['held_out'][:500]).float() / 255
        for codec in args.codecs:
            curves[codec] = classic_curve(codec, held)
        _report(args.out_dir, 'table4_rows', curves, 'Table 4 rows: ideal code length, 500 held-out images',
                dict(meta, work_dir=args.table4_work_dir), anchor=TABLE4_ROWS['titok_matched'],
                rate='bpp_ideal')
    if args.photos:
        crops = photos(size)
        curves = {codec: classic_curve(codec, crops) for codec in args.codecs}
        _report(args.out_dir, 'photos', curves, f'{len(crops)} crops of scikit-image photographs, {size} px',
                dict(meta, images=[name for name, _ in PHOTOS]))
    return 0


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)
