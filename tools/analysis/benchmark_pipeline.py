"""Images per second end to end: class labels -> tokens -> 256 px pixels, side by side with VAR.

    python tools/analysis/benchmark_pipeline.py [--config GENERATOR_CONFIG] [--batch-size 8] [--repeats 3]
        [--dtypes fp32 bf16] [--var-repo PATH/TO/VAR] [--var-depth 16] [--out work_dirs/benchmark_pipeline]

What a user waits for is an image. For the generator config (default SpectralAR-d16 with the two-stage B-64
tokenizer: ViT-B decoder with the proxy-code head, then the MaskGIT-VQGAN pixel decoder), the script times
sampling (the config's sampling settings: cfg 1.5 with the linear ramp, top-k 900, top-p 0.96), decoding the
tokens to pixels, and the two together, per image, in fp32 and in bf16 (a bf16 copy of the generator, whose
linears run on oneDNN-packed bf16 weights on the CPU; the tokenizer's decoder under bf16 autocast, the pixel
decoder in channels-last layout). VAR's bf16 figures are its code under bf16 autocast.

With ``--var-repo`` (a checkout of the public FoundationVision/VAR code; nothing of it is copied here) the
same process builds VAR-d16 and its VQVAE with random weights and times its whole ``autoregressive_infer_cfg``
(transformer and VQVAE decoder) at the same batch, cfg 1.5, top-k 900, top-p 0.96, and its VQVAE decoder
alone. The systems alternate inside every repeat, so that a change in the machine's speed hits all of them;
each figure is the median over ``--repeats`` after a warm-up. Random weights: speed does not depend on them.
Writes ``pipeline.md`` and ``pipeline.json`` to ``--out``.
"""
import argparse
import contextlib
import copy
import importlib
import os.path as osp
import statistics
import sys

import torch

from mmspectral.analysis.speed import announce_cpu, measure_alternating, wait_until_idle
from mmspectral.apis import load_config, register_all_modules
from mmspectral.cli import output_folder, positive_int
from mmspectral.fileio import write_report
from mmspectral.models.generators import generate_tokens
from mmspectral.registry import MODELS

DEFAULT_CONFIG = 'configs/spectralar/spectralar-d16_64tok_8xb96-333k_in1k-256.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='a GeneratorModel config with its tokenizer')
    parser.add_argument('--batch-size', type=positive_int, default=8)
    parser.add_argument('--repeats', type=positive_int, default=3)
    parser.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16'])
    parser.add_argument('--var-repo', default=None, help='checkout of FoundationVision/VAR (public code)')
    parser.add_argument('--var-depth', type=positive_int, default=16)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--no-wait', action='store_true', help='do not wait for an idle machine')
    parser.add_argument('--out', type=output_folder, default='work_dirs/benchmark_pipeline')
    return parser.parse_args(argv)


def build_mmspectral(config: str, device: torch.device):
    """The config's GeneratorModel with random weights (tokenizer and pixel decoder included)."""
    register_all_modules()
    cfg = load_config(config)
    if cfg.model.get('type') != 'GeneratorModel' or cfg.model.get('tokenizer') is None:
        raise ValueError(f'{config} must configure a GeneratorModel with its tokenizer.')
    cfg.model.tokenizer_checkpoint = None  # random weights
    torch.manual_seed(0)
    return MODELS.build(cfg.model).to(device).eval()


def build_var(repo: str, depth: int, device: torch.device):
    """VAR-d{depth} and its VQVAE from the public code at ``repo``, random weights (its own init)."""
    sys.path.insert(0, osp.abspath(repo))
    # VAR's builder turns off the default initialisation of torch's layers for the whole process: restore it.
    nn = torch.nn
    layers = (nn.Linear, nn.LayerNorm, nn.BatchNorm2d, nn.SyncBatchNorm, nn.Conv1d, nn.Conv2d,
              torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d)
    saved = {cls: cls.__dict__.get('reset_parameters') for cls in layers}
    try:
        var_models = importlib.import_module('models')
        torch.manual_seed(0)
        vae, var = var_models.build_vae_var(device=device, patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
                                            V=4096, Cvae=32, ch=160, share_quant_resi=4, num_classes=1000,
                                            depth=depth, shared_aln=False, attn_l2_norm=True,
                                            flash_if_available=False, fused_if_available=False)
    finally:
        for cls, fn in saved.items():
            if fn is None:
                with contextlib.suppress(AttributeError):
                    delattr(cls, 'reset_parameters')
            else:
                cls.reset_parameters = fn
        sys.path.remove(osp.abspath(repo))
    # VAR's init_weights covers the transformer only (its VQVAE comes from a checkpoint): give the VQVAE the
    # default initialisation its layers skipped, so that the random model samples finite numbers.
    torch.manual_seed(0)
    for module in vae.modules():
        if isinstance(module, layers) and hasattr(module, 'reset_parameters'):
            module.reset_parameters()
    return vae.eval(), var.eval()


def check_var_repo(repo: str) -> None:
    if not osp.isfile(osp.join(repo, 'models', 'var.py')):
        raise FileNotFoundError(f'--var-repo {repo!r} is not a checkout of FoundationVision/VAR (no '
                                'models/var.py). Clone or fetch it yourself; this script downloads nothing.')


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.var_repo:
        check_var_repo(args.var_repo)  # before building anything
    device = torch.device(args.device)
    _, skip = announce_cpu(device, 'bf16' in args.dtypes)
    if skip:
        args.dtypes = [dt for dt in args.dtypes if dt != 'bf16']
    b = args.batch_size
    model = build_mmspectral(args.config, device)
    gen = model.gen
    labels = torch.arange(b, device=device) % gen.num_classes
    runs = {}  # name -> callable timed per repeat
    for dt in args.dtypes:
        bf16 = dt == 'bf16'
        # bf16: a bf16 copy of the generator (no casts inside a sampling step) and the tokenizer's decoder
        # under autocast (its convolutions and linears in bf16, its norms in fp32).
        sampler = copy.deepcopy(gen).to(torch.bfloat16) if bf16 else gen
        state = {}

        def sample(sampler=sampler, state=state):
            with torch.no_grad():
                state['tokens'] = generate_tokens(sampler, labels, seed=0, **model.sampling)

        def decode(bf16=bf16, state=state):
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                state['images'] = model.decode(state['tokens'])

        runs[f'mmspectral {dt} sampling'] = sample
        runs[f'mmspectral {dt} decoding'] = decode
    if args.var_repo:
        vae, var = build_var(args.var_repo, args.var_depth, device)
        var_labels = labels % var.num_classes
        for dt in args.dtypes:
            bf16 = dt == 'bf16'
            amp = (lambda bf16=bf16: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16))

            def var_whole(amp=amp):
                with torch.no_grad(), amp():
                    var.autoregressive_infer_cfg(B=b, label_B=var_labels, g_seed=0, cfg=1.5, top_k=900,
                                                 top_p=0.96, more_smooth=False)

            f_hat = torch.randn(b, vae.Cvae, 16, 16, device=device)

            def var_decode(amp=amp, f_hat=f_hat):
                with torch.no_grad(), amp():
                    vae.fhat_to_img(f_hat)

            runs[f'VAR {dt} whole'] = var_whole
            runs[f'VAR {dt} decoding'] = var_decode
    if device.type == 'cpu' and not args.no_wait:
        wait_until_idle()
    times, foreign = measure_alternating(runs, args.repeats, device)  # the warm-up also packs the weights
    times = {name: [t / b for t in ts] for name, ts in times.items()}  # per image
    med = {name: statistics.median(t) for name, t in times.items()}
    rows = []
    for dt in args.dtypes:
        s, d = med[f'mmspectral {dt} sampling'], med[f'mmspectral {dt} decoding']
        row = dict(dtype=dt, sampling=s, decoding=d, total=s + d)
        if f'VAR {dt} whole' in med:
            row.update(var_whole=med[f'VAR {dt} whole'], var_decoding=med[f'VAR {dt} decoding'],
                       speedup=med[f'VAR {dt} whole'] / (s + d))
        rows.append(row)
    result = dict(config=args.config, batch_size=b, repeats=args.repeats, device=str(device),
                  threads=torch.get_num_threads(), foreign_cpu_s=foreign, seconds_per_image=times,
                  median_seconds_per_image=med, rows=rows)
    lines = [f'batch {b}, {torch.get_num_threads()} threads, median of {args.repeats} (s / image); '
             f'foreign CPU time while measuring {foreign:.1f} s', '',
             '| dtype | mmspectral sampling | decoding to 256 px | sampling + decoding | VAR whole '
             '`autoregressive_infer_cfg` | of which VQVAE decoding | VAR / mmspectral |',
             '|---|---|---|---|---|---|---|']
    for row in rows:
        var_cols = (f"{row['var_whole']:.3f} | {row['var_decoding']:.3f} | {row['speedup']:.2f}x"
                    if 'var_whole' in row else '| |')
        lines.append(f"| {row['dtype']} | {row['sampling']:.3f} | {row['decoding']:.3f} | "
                     f"{row['total']:.3f} | {var_cols} |")
    table = '\n'.join(lines) + '\n'
    print(table)
    write_report(args.out, 'pipeline', table, result)
    return result


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
