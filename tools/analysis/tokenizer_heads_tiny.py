"""Train the tiny nested tokenizer with one decoder head and measure it (docs/design.md, "Patch seams").

    python tools/analysis/tokenizer_heads_tiny.py --head conv --steps 2000 --probe work_dirs/probe_fine.pth \
        --conv-head '{"channels": 64, "min_channels": 16, "convs_per_stage": 1}'

Trains configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py (k uniform in 1..16, as the config; the
quick start's ``full_fraction`` only through ``--cfg-options``) on ``--class-set`` (default 'fine', the set of
the heads study; the config's own is 'coarse') for --steps steps (warm-up min(100, steps / 10 + 1), cosine to
the end), with ``--head``'s decoder head (``conv`` without ``--conv-head``: the config's own, the light one
with the pixel shuffle), then prints one JSON line: training time, and on 200 held-out images
the full decode's PSNR (whole, object, background), the object's colour error and the blockiness (mean step
across patch boundaries over the step elsewhere; the real images' value beside it), and, with --probe
(tools/train_probe.py --class-set ...), the judge's accuracy on the reconstructions; and how many of the N - 1
prefix steps change the decode visibly (50 of the images). ``--cfg-options`` changes the config (patch size,
number of tokens, prefix sampling).
"""
import argparse
import json
import os.path as osp
import time

import torch
from mmengine.config import DictAction

from mmspectral.apis import build_runner, load_config, register_all_modules
from mmspectral.cli import existing_file, non_negative_int, output_folder, positive_int
from mmspectral.evaluation import progression_steps
from mmspectral.evaluation.embedded_classifier import (accuracy, load_shapes_classifier,
                                                       reconstruction_fidelity, render_batch)

CONFIG = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Tiny tokenizer decoder heads: train one, measure it.')
    parser.add_argument('--head', choices=['pixels', 'conv'], default='conv')
    parser.add_argument('--conv-head', type=json.loads, default=None, help='JSON: ConvPixelHead arguments')
    parser.add_argument('--steps', type=positive_int, default=2000)
    parser.add_argument('--class-set', choices=['coarse', 'fine'], default='fine')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    parser.add_argument('--probe', type=existing_file, default=None,
                        help='judge probe of the same class set (64 px)')
    parser.add_argument('--work-dir', type=output_folder, default='work_dirs/tokenizer_heads_tiny')
    parser.add_argument('--tag', default='',
                        help='appended to the run\'s folder name (for --cfg-options runs)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='config overrides, e.g. model.tokenizer.patch_size=8 '
                             'model.tokenizer.num_tokens=32')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    register_all_modules()
    cfg = load_config(CONFIG, args.cfg_options)
    tag = args.head + ''.join(f'_{k}{v}' for k, v in sorted((args.conv_head or {}).items())) + args.tag
    cfg.work_dir = osp.join(args.work_dir, f'{tag}_{args.class_set}_{args.steps}_seed{args.seed}')
    cfg.experiment_name = osp.basename(cfg.work_dir)
    cfg.model.tokenizer.decoder_head = args.head
    if args.conv_head:
        cfg.model.tokenizer.conv_head = args.conv_head
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.class_set = args.class_set
    warmup = min(100, args.steps // 10 + 1)
    cfg.train_cfg.update(max_iters=args.steps, val_interval=args.steps)
    cfg.param_scheduler[0].end = warmup
    cfg.param_scheduler[1].update(begin=warmup, end=args.steps)
    cfg.randomness = dict(seed=args.seed, deterministic=False)
    cfg.log_level = 'WARNING'
    runner = build_runner(cfg)
    start = time.time()
    runner.train()
    seconds = time.time() - start
    tokenizer = runner.model.eval().tokenizer
    images, labels, masks = render_batch(range(200), 64, seed=777, class_set=args.class_set,
                                         with_masks=True)  # (200, 3, 64, 64), (200, 64, 64)
    with torch.no_grad():  # the tiny configs' value range is [-1, 1]
        recon = ((tokenizer.decode_tokens(tokenizer.encode(images * 2 - 1)) + 1) / 2).clamp(0, 1)
        tokens = tokenizer.encode(images[:50] * 2 - 1)
        prefixes = [((tokenizer.decode_tokens(tokens[:, :k]) + 1) / 2).clamp(0, 1)
                    for k in range(1, tokens.shape[1] + 1)]
    fidelity = reconstruction_fidelity(recon, images, masks, tokenizer.patch_size)
    out = dict(head=args.head, conv_head=args.conv_head, class_set=args.class_set, steps=args.steps,
               seed=args.seed, cfg_options=args.cfg_options, train_seconds=round(seconds, 1),
               parameters=sum(p.numel() for p in tokenizer.parameters()),
               visible_progression_steps=progression_steps(prefixes)['visible_steps'],
               **{k: round(v, 3) for k, v in fidelity.items()})
    if args.probe:
        probe = load_shapes_classifier(args.probe, 64, args.class_set)[0]
        out['judge_on_reconstructions'] = round(accuracy(probe, recon, labels), 3)
    print(json.dumps(out))
    return out


if __name__ == '__main__':
    main()
