"""Class-balanced sampling for evaluation: PNG files plus the npz the ADM evaluator reads.

    python tools/sample.py MODEL_FOLDER --out samples/NAME [--per-class 50] [--batch-size 32]
        (or GENERATOR_CONFIG CHECKPOINT, or a hub id 'org/name', instead of MODEL_FOLDER)
        [--cfg 1.5] [--cfg-schedule linear] [--top-k 900] [--top-p 0.96] [--temperature 1.0] [--seed 0]
        [--num-tokens N]     # truncated generation: only the first N tokens
        [--super-resolve bicubic|stride|patch]   # Table 3: each sample at twice the size
    torchrun --nproc_per_node 8 tools/sample.py ... --launcher pytorch

Writes ``<out>/images/<index>_<class>.png`` for ``per_class`` samples of every class (50 x 1000 = 50,000 for
ImageNet, the protocol of docs/evaluation.md) and, when all are there, ``<out>/samples_<M>x<H>x<W>x3.npz``
with ``arr_0`` (uint8, M x H x W x 3, in index order) and ``labels``. Batch b uses seed ``seed + b`` whichever
rank runs it, so the images do not depend on the number of processes; batches whose PNGs all exist are
skipped, so an interrupted run continues where it stopped. Sampling settings default to the config's
``model.sampling``.

``--super-resolve`` writes every sample at twice its size instead (Table 3): the sample is drawn as usual,
rounded to 8 bits as its PNG would be, then up-sampled by bicubic interpolation (the baseline) or by spectral
completion of its four strided ('stride') or quadrant ('patch') sub-images (``GeneratorModel.super_resolve``),
with the batch's random stream continued. The three modes start from the same samples.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction  # no torch: --help and bad arguments answer before torch loads

from mmspectral.cli import (add_model_args, add_sampling_args, add_trust_arg, check_model_args,
                            non_negative_int, output_folder, positive_int, sampling_options)


def image_path(out: str, index: int, label: int) -> str:
    return osp.join(out, 'images', f'{index:06d}_{label:04d}.png')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Class-balanced sampling to PNG + npz.')
    add_model_args(parser, 'generator')
    parser.add_argument('--out', required=True, type=output_folder, help='output folder')
    parser.add_argument('--per-class', type=positive_int, default=50)
    parser.add_argument('--num-classes', type=positive_int, default=None,
                        help='use the first C classes (default: all)')
    parser.add_argument('--batch-size', type=positive_int, default=32)
    add_sampling_args(parser)
    parser.add_argument('--seed', type=non_negative_int, default=0)
    parser.add_argument('--bf16', action='store_true',
                        help='sample with a bf16 copy of the generator and decode under bf16 autocast '
                             '(faster on CPUs with bf16 units and on GPUs; samples differ a little; on a CPU '
                             'without native bf16 it is emulated, much slower, and says so)')
    parser.add_argument('--no-npz', action='store_true', help='only the PNG files')
    parser.add_argument('--super-resolve', choices=['bicubic', 'stride', 'patch'], default=None,
                        help='write each sample at twice its size (Table 3): bicubic up-sampling '
                             '(the baseline) or spectral completion of strided / quadrant sub-images')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE')
    parser.add_argument('--device', default=None, help='cuda when a GPU is visible, else cpu')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    add_trust_arg(parser)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)  # counts, files and folders are checked here, before any model loads
    check_model_args(parser, args)
    if args.super_resolve and args.num_tokens is not None:
        parser.error('--super-resolve up-samples full samples (Table 3); drop --num-tokens, '
                     'or sample the truncated generations without --super-resolve.')
    return args


def provenance(args, model, options: dict, num_classes: int) -> dict:
    """What decides the samples (the process count does not: every batch has its own seed)."""
    from mmspectral.fileio import file_identity
    tokenizer_checkpoint = getattr(model, 'tokenizer_checkpoint', None)
    folder = getattr(model, 'model_folder', None)  # a model folder (or a hub id's): its weights file
    weights = args.checkpoint or osp.join(folder, 'model.safetensors')
    return dict(generator_checkpoint=file_identity(weights),
                tokenizer_checkpoint=file_identity(tokenizer_checkpoint) if tokenizer_checkpoint else None,
                config=folder or osp.abspath(args.model), cfg_options=args.cfg_options or {},
                sampling=model.sampling_options(options), seed=args.seed, per_class=args.per_class,
                num_classes=num_classes, batch_size=args.batch_size, super_resolve=args.super_resolve,
                precision='bf16' if args.bf16 else 'fp32')


def main(argv=None) -> None:
    args = parse_args(argv)
    import cv2
    import numpy as np
    import torch
    import torch.distributed as dist
    from mmengine.utils import ProgressBar

    from mmspectral.apis import init_generator, register_all_modules
    from mmspectral.engine import setup_worker, shutdown_distributed
    from mmspectral.evaluation.protocol import balanced_batches, balanced_labels
    from mmspectral.fileio import ProvenanceError, claim_folder
    from mmspectral.models.generators import make_rng
    from mmspectral.utils.precision import cpu_precision
    register_all_modules()
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    rank, world, device = setup_worker(args.launcher, device)
    model = init_generator(args.model, args.checkpoint, device, args.cfg_options, args.trust_checkpoint)
    if args.bf16:
        cpu_precision(torch.bfloat16, explicit=True, where='tools/sample.py --bf16', device_type=device.type)
        model.gen.to(torch.bfloat16)  # weights, activations and KV cache in bf16: no casts inside a step
    options = sampling_options(args)
    try:  # the command line's settings over the config's, checked before anything is written
        model.sampling_options(options, 'the sampling options (command line over model.sampling)')
    except (TypeError, ValueError) as exc:
        raise SystemExit(str(exc))
    if args.num_classes is not None and args.num_classes > model.gen.num_classes:
        classes = model.gen.num_classes
        raise SystemExit(f'--num-classes {args.num_classes}: the generator has {classes} classes (labels '
                         f'0..{classes - 1}; label {classes} is the guidance null class, not a class).')
    num_classes = args.num_classes or model.gen.num_classes
    labels = balanced_labels(num_classes, args.per_class)
    images_dir = osp.join(args.out, 'images')
    has_outputs = osp.isdir(images_dir) and any(name.endswith('.png') for name in os.listdir(images_dir))
    try:
        claim_folder(args.out, provenance(args, model, options, num_classes), has_outputs, 'samples',
                     write=rank == 0)
    except ProvenanceError as exc:
        raise SystemExit(str(exc))
    os.makedirs(images_dir, exist_ok=True)
    mine = balanced_batches(num_classes, args.per_class, args.batch_size, args.seed, rank, world)
    todo = [batch for batch in mine
            if not all(osp.isfile(image_path(args.out, i, labels[i])) for i in batch.indices)]
    if rank == 0:
        print(f'{len(labels)} samples ({args.per_class} per class, {num_classes} classes) in '
              f'{-(-len(labels) // args.batch_size)} '
              f'batches on {world} process(es); {len(mine) - len(todo)} batches of this rank already done. '
              f'Sampling: {model.sampling_options(options)}', flush=True)
    bar = ProgressBar(len(todo)) if rank == 0 and todo else None
    for batch in todo:
        idx = batch.indices
        rng = make_rng(batch.seed)  # continued into super_resolve
        batch_labels = torch.as_tensor(batch.labels, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            images = model.sample(batch_labels, rng=rng, **options)['images'].float()
            if args.super_resolve:
                images = model.super_resolve((images * 255).round() / 255, batch_labels,
                                             mode=args.super_resolve, rng=rng, **options)
        images = (images.float() * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()  # (b, H, W, 3)
        for i, img in zip(idx, images):
            path = image_path(args.out, i, labels[i])
            tmp = path[:-4] + '.tmp.png'  # write, then rename: a killed run leaves no half-written PNG
            cv2.imwrite(tmp, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            os.replace(tmp, path)
        if bar is not None:
            bar.update()
    if dist.is_initialized():
        dist.barrier()
    if rank == 0 and not args.no_npz:
        first = cv2.imread(image_path(args.out, 0, labels[0]))
        h, w = first.shape[:2]
        arr = np.empty((len(labels), h, w, 3), dtype=np.uint8)
        for i, label in enumerate(labels):
            arr[i] = cv2.cvtColor(cv2.imread(image_path(args.out, i, label)), cv2.COLOR_BGR2RGB)
        path = osp.join(args.out, f'samples_{len(labels)}x{h}x{w}x3.npz')
        np.savez(path, arr_0=arr, labels=labels)
        print(f'\nwrote {path}', flush=True)
    shutdown_distributed()


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
