"""Is each generated EmbeddedShapes sample of the class it was asked for? A classifier trained on real images
says.

    python tools/analysis/shapes_class_accuracy.py MODEL (a model folder, or GENERATOR_CONFIG CHECKPOINT)
        [--per-class 20]
        [--classifier work_dirs/shapes_classifier_64px.pth] [--out accuracy.json] [--cfg 3.0] [--seed 0]

Trains the small ShapesClassifier (mmspectral.evaluation.embedded_classifier; under a minute on a CPU) unless
``--classifier`` names a saved one, then reports its accuracy on three sets of the same classes:
held-out real images (the ceiling), the tokenizer's reconstructions of real validation images from all N
tokens (what the tokenizer can deliver to a generator at best), and class-balanced generated samples.
"""
import argparse

import torch
from mmengine.config import DictAction

from mmspectral.apis import add_sampling_args, init_generator, sampling_options
from mmspectral.cli import add_model_args, check_model_args, non_negative_int, output_file, positive_int
from mmspectral.datasets import EMBEDDED_CLASS_SETS, class_set_of
from mmspectral.evaluation.embedded_classifier import (accuracy, load_or_train_shapes_classifier,
                                                       reconstruction_fidelity, render_batch)
from mmspectral.evaluation.protocol import balanced_labels, balanced_samples
from mmspectral.evaluation.sample_quality import progression_quality
from mmspectral.fileio import write_json


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Class accuracy of EmbeddedShapes samples and reconstructions.')
    add_model_args(parser, 'generator')
    parser.add_argument('--per-class', type=positive_int, default=20)
    parser.add_argument('--classifier', default=None,
                        help='saved classifier (trained and saved here if missing)')
    parser.add_argument('--out', type=output_file, default=None,
                        help='write the accuracies to this JSON file')
    parser.add_argument('--class-set', default=None, choices=sorted(EMBEDDED_CLASS_SETS),
                        help='EmbeddedShapes class set (default: the one the training tokens\' classes name)')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    parser.add_argument('--batch-size', type=positive_int, default=50)
    add_sampling_args(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    check_model_args(parser, args)
    return args


def decode(model, tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Images in [0, 1] of token ids (B, k), decoded in batches."""
    return torch.cat([model.decode(tokens[i:i + batch_size]) for i in range(0, len(tokens), batch_size)])


@torch.no_grad()
def main(argv=None):
    args = parse_args(argv)
    model = init_generator(args.model, args.checkpoint, 'cpu', args.cfg_options)
    options = sampling_options(args)
    model.sampling_options(options, 'the sampling options')  # before the classifier and the reconstructions
    tokenizer = model.tokenizer
    size, num_classes = tokenizer.image_size, model.gen.num_classes
    class_set = args.class_set or class_set_of(getattr(model, 'class_names', None) or ())
    classifier, real_acc = load_or_train_shapes_classifier(args.classifier, size, class_set)

    # Tokenizer reconstructions of validation-seed images (the embedded configs' validation split uses
    # seed 1).
    images, labels, masks = render_batch(range(args.per_class * num_classes), size, seed=1,
                                         num_classes=num_classes, class_set=class_set, with_masks=True)
    recons = torch.cat([model.decode(model.encode(images[i:i + args.batch_size]))
                        for i in range(0, len(images), args.batch_size)])
    recon_acc = accuracy(classifier, recons, labels)
    fidelity = reconstruction_fidelity(recons, images, masks, tokenizer.patch_size)

    # Class-balanced samples under the protocol of mmspectral/evaluation/protocol.py (batch b: seed + b).
    wanted = torch.from_numpy(balanced_labels(num_classes, args.per_class))
    tokens = torch.cat([out['tokens'] for _, out in balanced_samples(
        model, num_classes, args.per_class, args.batch_size, args.seed, decode=False, **options)])
    samples = decode(model, tokens, args.batch_size)
    sample_acc = accuracy(classifier, samples, wanted)
    progression = progression_quality(model, tokens, images, args.batch_size)
    result = dict(real_images=real_acc, tokenizer_reconstructions=recon_acc, generated_samples=sample_acc,
                  per_class=args.per_class, num_classes=num_classes, class_set=class_set,
                  chance=1.0 / num_classes, reconstruction_fidelity=fidelity, progression=progression,
                  sampling=model.sampling_options(options), seed=args.seed)
    print('class accuracy of the ShapesClassifier: real images {:.1%}, tokenizer reconstructions {:.1%}, '
          'generated samples {:.1%} (chance {:.1%})'.format(real_acc, recon_acc, sample_acc,
                                                            1.0 / num_classes),
          flush=True)
    print('reconstructions: PSNR {psnr:.2f} dB (object {psnr_object:.2f}, background {psnr_background:.2f}), '
          'object colour error {object_colour_error:.3f}, blockiness {blockiness:.2f} (real images '
          '{blockiness_real_images:.2f})'.format(**fidelity), flush=True)
    steps = progression['samples']
    print('progression of the samples: {} of {} steps k-1 -> k change visibly (mean |change| >= {:.4f}); '
          'per step: {}'.format(steps['visible_steps'], len(steps['step_change']), steps['visible'],
                                ', '.join(f'{c:.4f}' for c in steps['step_change'])), flush=True)
    if args.out:
        write_json(args.out, result)


if __name__ == '__main__':
    main()
