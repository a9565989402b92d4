"""Train the EmbeddedShapes probe classifier, and judge sample files with it.

    python tools/train_probe.py [--out work_dirs/shapes_probe_64px.pth] [--image-size 64] [--steps 250]
        [--input-size 32]                  # what the probe sees: images are area-resized to it first
    python tools/train_probe.py --out PROBE.pth --samples samples/NAME/samples_200x64x64x3.npz
        [--num-real 1000] [--resize]   # samples of another size (super-resolved ones) resized to the
                                       probe's, as FID resizes to 299

The embedded dataset has no Inception network that knows it, so mmspectral trains a small CNN on freshly drawn
real images (about a minute on a CPU) and uses it twice: its class accuracy on samples says whether the
generator draws the class it was asked for, and its pooled features replace Inception features for a Frechet
distance and precision / recall (k = 3) against real images. ``--samples`` takes the npz of tools/sample.py
(``arr_0`` uint8 N x H x W x 3 and ``labels``) and prints and writes (``--json``) those figures. An existing
``--out`` file is reused unless ``--retrain``. The same probe plugs into tools/eval_fid.py as
``--extractor ShapesProbe --extractor-options checkpoint=PROBE.pth``.
"""
import argparse
import json
import os
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F

from mmspectral.cli import existing_file, output_file, output_problem, positive_int
from mmspectral.datasets import EMBEDDED_CLASS_SETS
from mmspectral.evaluation.embedded_classifier import load_or_train_shapes_classifier, load_shapes_classifier
from mmspectral.evaluation.generative.npz_io import check_images, npz_arrays
from mmspectral.evaluation.sample_quality import probe_quality
from mmspectral.fileio import write_json


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> (N, size, size, 3), bilinear with half-pixel centres (the FID Inception's
    resize)."""
    out = []
    for start in range(0, len(images), 256):
        x = torch.from_numpy(images[start:start + 256]).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)
        out.append(x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train the EmbeddedShapes probe; judge samples with it.')
    parser.add_argument('--out', default='work_dirs/shapes_probe_64px.pth', type=output_file,
                        help='probe file (reused if present)')
    parser.add_argument('--image-size', type=positive_int, default=64, help='image size of a new probe')
    parser.add_argument('--steps', type=positive_int, default=250, help='training steps of batch 32')
    parser.add_argument('--input-size', type=positive_int, default=None,
                        help='size a new probe sees (images are area-resized to it; default 32, which judges '
                             'layouts; the image size judges detail)')
    parser.add_argument('--class-set', default=None, choices=sorted(EMBEDDED_CLASS_SETS),
                        help="EmbeddedShapes class set of the probe (default: an existing probe's, "
                             "else 'fine')")
    parser.add_argument('--retrain', action='store_true', help='train again even if --out exists')
    parser.add_argument('--samples', default=None, type=existing_file,
                        help='samples npz to judge (arr_0 images, labels)')
    parser.add_argument('--num-real', type=positive_int, default=None,
                        help='real images to compare with (default: as many as samples)')
    parser.add_argument('--json', default=None, type=output_file,
                        help='write the figures here (default: next to --samples)')
    parser.add_argument('--resize', action='store_true',
                        help="resize samples of another size to the probe's (bilinear, as the FID Inception "
                             'network resizes to 299 px), e.g. super-resolved samples')
    args = parser.parse_args(argv)
    if args.samples is not None:  # the default --json, checked before a probe is trained or removed
        args.json = args.json or osp.splitext(args.samples)[0] + '_probe.json'
        problem = output_problem(args.json, folder=False)
        if problem:
            parser.error(f'the figures file (--json): {problem}')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.samples is not None:  # a bad samples file is refused before a probe is removed or trained
        arrays = npz_arrays(args.samples)
        check_images(args.samples, arrays)
        if 'labels' not in arrays:
            raise SystemExit(f'{args.samples} needs labels (N,) beside arr_0, as tools/sample.py writes; it '
                             f'has {sorted(arrays)}.')
    if args.retrain and osp.isfile(args.out):
        os.remove(args.out)
    if osp.isfile(args.out):  # an existing probe keeps the size and class set it was trained for
        probe, real_accuracy, size = load_shapes_classifier(args.out, class_set=args.class_set)
        class_set = probe.class_set
        if args.input_size is not None and args.input_size != probe.input_size:
            raise SystemExit(f'{args.out} holds a probe that sees {probe.input_size} px, not --input-size '
                             f'{args.input_size}; pass --retrain or another --out.')
    else:
        size, class_set = args.image_size, args.class_set or 'fine'
        probe, real_accuracy = load_or_train_shapes_classifier(args.out, size, class_set, steps=args.steps,
                                                               input_size=args.input_size or 32)
    print(f'probe {args.out}: {100 * real_accuracy:.1f}% on held-out real {size} px images '
          f'({class_set!r} classes; it sees them at {probe.input_size} px)')
    if args.samples is None:
        return dict(probe_real_accuracy=real_accuracy)
    with np.load(args.samples) as data:
        images, labels = data['arr_0'], data['labels']
    if images.shape[1] != size and args.resize:
        images = resize_uint8(images, size)
    if images.shape[1] != size:
        raise SystemExit(f'The samples are {images.shape[1]} px but the probe {args.out} is for {size} px; '
                         f'train one for them: --image-size {images.shape[1]} --out <another file>, or judge '
                         'them resized: --resize.')
    result = probe_quality(images, labels, args.out, num_real=args.num_real, class_set=class_set)
    result.update(samples=args.samples, num_samples=int(len(images)), probe=args.out,
                  probe_input_size=probe.input_size,
                  resized_from=int(arrays['arr_0'][0][1]) if arrays['arr_0'][0][1] != size else None)
    print(json.dumps(result, indent=1))
    out = args.json
    write_json(out, result)
    print(f'written {out}')
    return result


if __name__ == '__main__':
    main()
