"""One tiny Table 4 row's tokenizer alone: what it can give its generator (tools/analysis/ablation_tiny.sh).

    python tools/analysis/ablation_row_metrics.py MODEL (a model folder, or GENERATOR_CONFIG CHECKPOINT) \
        --probe PROBE --out OUT.json \
        [--class-set coarse] [--num-images 500] [--cfg-options ...]

On ``--num-images`` held-out EmbeddedShapes images (the configs' validation split, seed 1) it writes: the
probe's judgement of the full reconstructions (class accuracy, Frechet distance, precision and recall in the
probe's feature space, the same figures the samples get), their fidelity (PSNR of the whole image, the object
and the background, the object's colour error, blockiness), PSNR per DCT band of the full decode, per token
position the perplexity of the codes used (how many codes a position spends), and the progression: how much
the decode changes from prefix k - 1 to k, for ``--progression-samples`` class-balanced samples (drawn with
the generator config's sampling settings, generator seed b for the b-th batch of 100), for the reconstructions
of as many of the images, and for their low-pass images under the tokenizer's schedule
(``evaluation.sample_quality.progression_quality``). ``--progression-only`` adds that part to an existing
``OUT.json`` and leaves the rest as it is.

``prefix_targets`` says what the tokenizer trained its prefixes towards: ``'lowpass'`` (spectral supervision)
or ``'full_image'`` (the TiTok-tokens and ``nested`` rows, ``spectral_supervision=False``). For the latter the
progression's ``lowpass_targets`` are a reference only, never this tokenizer's targets, and
``lowpass_targets_note`` says so.
"""
import argparse
import json

import torch
from mmengine.config import DictAction

from mmspectral.analysis.ablation import label_targets
from mmspectral.apis import init_generator
from mmspectral.cli import add_model_args, check_model_args, existing_file, output_file, positive_int
from mmspectral.evaluation import band_psnr, position_perplexity
from mmspectral.evaluation.embedded_classifier import reconstruction_fidelity, render_batch
from mmspectral.evaluation.sample_quality import probe_quality, progression_quality
from mmspectral.fileio import write_json

BAND_EDGES = (0, 2, 4, 8, 16, 32, 64)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="A tiny Table 4 row's tokenizer ceiling.")
    add_model_args(parser, 'generator')
    parser.add_argument('--probe', type=existing_file, required=True,
                        help='EmbeddedShapes probe (tools/train_probe.py)')
    parser.add_argument('--out', type=output_file, required=True)
    parser.add_argument('--class-set', default='coarse', choices=['coarse', 'fine'])
    parser.add_argument('--num-images', type=positive_int, default=500)
    parser.add_argument('--progression-samples', type=positive_int, default=200)
    parser.add_argument('--progression-only', action='store_true',
                        help='add the progression to an existing OUT.json, nothing else')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    check_model_args(parser, args)
    return args


@torch.no_grad()
def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.num_images < 10:
        raise SystemExit(f'--num-images must be at least 10 (one per class), got {args.num_images}.')
    model = init_generator(args.model, args.checkpoint, 'cpu', args.cfg_options)
    size = model.tokenizer.image_size
    images, labels, masks = render_batch(range(args.num_images), size, seed=1, class_set=args.class_set,
                                         with_masks=True)
    wanted = torch.arange(args.progression_samples) % model.gen.num_classes
    tokens = torch.cat([model.sample(wanted[i:i + 100], decode=False,
                                     seed=b)['tokens']
                        for b, i in enumerate(range(0, len(wanted), 100))])
    progression = progression_quality(model, tokens, images[:args.progression_samples])
    if args.progression_only:
        with open(args.out) as f:
            result = json.load(f)
        result['progression'] = progression
        label_targets(result, model.tokenizer)
        write_json(args.out, result)
        return result
    ids = torch.cat([model.encode(images[i:i + 50]) for i in range(0, len(images), 50)])
    recons = torch.cat([model.decode(ids[i:i + 50]) for i in range(0, len(ids), 50)]).clamp(0, 1)
    recons = (recons * 255).round() / 255  # what a saved image holds, as the samples
    judged = probe_quality(recons, labels, args.probe, class_set=args.class_set)
    edges = [e for e in BAND_EDGES if e < size] + [size]
    result = dict(reconstructions={k: v for k, v in judged.items() if k != 'probe_real_accuracy'},
                  probe_real_accuracy=judged['probe_real_accuracy'],
                  fidelity=reconstruction_fidelity(recons, images, masks, model.tokenizer.patch_size),
                  band_psnr=band_psnr(recons, images, edges),
                  position_perplexity=position_perplexity(ids, model.tokenizer.codebook_size),
                  progression=progression, num_images=args.num_images, class_set=args.class_set)
    label_targets(result, model.tokenizer)
    write_json(args.out, result)
    return result


if __name__ == '__main__':
    main()
