"""TiTok's stage-1 training step, mmspectral against the public bytedance/1d-tokenizer code, in one process.

    python tools/analysis/benchmark_titok_official.py --titok-repo PATH/TO/1d-tokenizer [--batch-size 4]
        [--image-size 256] [--repeats 5] [--amp] [--out work_dirs/benchmark_titok_official]

The step of TiTok's two-stage recipe, stage 1, at B-64 (ViT-B encoder and decoder, patch 16, 64 tokens,
4096 x 12 codebook, 256 px): the frozen MaskGIT-VQGAN teacher encodes the batch into proxy codes, the
tokenizer encodes, quantises and decodes to 1024-way logits per patch, cross-entropy plus the quantiser
losses, backward, gradient clipping at 1.0, AdamW. Three models take turns inside every repeat, so a change in
the machine's speed hits all of them alike:

* ``official TiTok``: ``modeling.titok.TiTok`` and ``PretrainedTokenizer`` of the public code at
  ``--titok-repo`` (it needs omegaconf, accelerate and requests on ``PYTHONPATH``; nothing of it is copied
  here), its loss ``ReconstructionLoss_Stage1``;
* ``mmspectral TiTok``: configs/titok/titok-b_64tok_8xb32-1000k_in1k-256_stage1.py;
* ``mmspectral SpectralAR``: configs/spectralar/spectralar-b_64tok_8xb32-1000k_in1k-256_stage1.py (nested
  prefixes, low-pass targets, spectral causal masks).

All three get the same random teacher weights (speed does not depend on weights); the tokenizers have their
own random initialisation. Each steps with the optimiser its training uses: mmspectral's from the config's
``optim_wrapper`` (MMEngine's constructor: AdamW with ``fused=True``, no decay on norms, biases, embeddings
and the latent / mask tokens, clipping at 1.0), the official one as its ``utils/train_utils.py`` builds it
(``torch.optim.AdamW`` with its defaults, the same two decay groups, clipping at 1.0). ``--same-optimizer``
gives all three a plain ``torch.optim.AdamW`` instead, to compare the models' steps alone. fp32 by default
(``--amp``: bf16 autocast for all three). Median seconds per step over ``--repeats`` after a warm-up; writes
``titok_official.md`` and ``.json`` to ``--out``.
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile

import torch
from mmengine.optim import build_optim_wrapper

from mmspectral.analysis.speed import announce_cpu, measure_alternating, wait_until_idle
from mmspectral.apis import load_config, register_all_modules
from mmspectral.cli import output_folder, positive_int
from mmspectral.fileio import write_report
from mmspectral.models.utils import persistent_tensors
from mmspectral.registry import MODELS

CONFIGS = {'mmspectral TiTok': 'configs/titok/titok-b_64tok_8xb32-1000k_in1k-256_stage1.py',
           'mmspectral SpectralAR': 'configs/spectralar/spectralar-b_64tok_8xb32-1000k_in1k-256_stage1.py'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--titok-repo', required=True,
                        help='checkout of bytedance/1d-tokenizer (public code)')
    parser.add_argument('--batch-size', type=positive_int, default=4)
    parser.add_argument('--image-size', type=positive_int, default=256)
    parser.add_argument('--repeats', type=positive_int, default=5)
    parser.add_argument('--amp', action='store_true', help='bf16 autocast for all three')
    parser.add_argument('--same-optimizer', action='store_true',
                        help="a plain torch.optim.AdamW for all three, not each one's training optimiser")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--no-wait', action='store_true')
    parser.add_argument('--out', type=output_folder, default='work_dirs/benchmark_titok_official')
    return parser.parse_args(argv)


def build_mmspectral(config: str, image_size: int, device):
    """The stage-1 TokenizerModel of ``config`` with random teacher weights and no validation decoder, and the
    config's ``optim_wrapper`` settings."""
    cfg = load_config(config)
    cfg.model.proxy_teacher.update(pretrained=None, allow_random_init=True)
    cfg.model.tokenizer.update(pixel_decoder=None, image_size=image_size)
    return MODELS.build(cfg.model).to(device).train(), cfg.optim_wrapper


def official_optimiser(model):
    """The official training's AdamW: no weight decay on the parameters its ``utils/train_utils.py`` excludes
    (1-D tensors and names with ln, bias, latent_tokens, mask_token, embedding, norm, gamma or embed)."""
    words = ('ln', 'bias', 'latent_tokens', 'mask_token', 'embedding', 'norm', 'gamma', 'embed')
    groups = {True: [], False: []}  # excluded from decay -> parameters
    for n, p in model.named_parameters():
        if p.requires_grad:
            groups[p.ndim < 2 or any(w in n for w in words)].append(p)
    flat, rest = groups[True], groups[False]
    return flat + rest, torch.optim.AdamW([dict(params=flat, weight_decay=0.0),
                                           dict(params=rest, weight_decay=1e-4)],
                                          lr=1e-4, betas=(0.9, 0.99))


def build_official(repo: str, teacher_state: dict, image_size: int, device):
    """The public TiTok-B-64 (stage 1), its teacher loaded with ``teacher_state``, and its stage-1 loss."""
    sys.path.insert(0, osp.abspath(repo))
    from modeling.modules.losses import ReconstructionLoss_Stage1
    from modeling.titok import PretrainedTokenizer, TiTok
    from omegaconf import OmegaConf
    config = OmegaConf.create(dict(
        model=dict(vq_model=dict(codebook_size=4096, token_size=12, use_l2_norm=True, commitment_cost=0.25,
                                 vit_enc_model_size='base', vit_dec_model_size='base', vit_enc_patch_size=16,
                                 vit_dec_patch_size=16, num_latent_tokens=64, finetune_decoder=False)),
        losses=dict(quantizer_weight=1.0), dataset=dict(preprocessing=dict(crop_size=image_size))))
    with tempfile.TemporaryDirectory() as tmp:  # PretrainedTokenizer loads its weights from a file
        path = osp.join(tmp, 'teacher.bin')
        torch.save(teacher_state, path)
        teacher = PretrainedTokenizer(path).to(device)
    return TiTok(config).to(device).train(), teacher, ReconstructionLoss_Stage1(config)


def check_repo(repo: str) -> None:
    if not osp.isfile(osp.join(repo, 'modeling', 'titok.py')):
        raise FileNotFoundError(f'--titok-repo {repo!r} is not a checkout of bytedance/1d-tokenizer (no '
                                'modeling/titok.py). Clone or fetch it yourself; this script downloads '
                                'nothing.')


def main(argv=None) -> dict:
    args = parse_args(argv)
    check_repo(args.titok_repo)  # before building anything
    device = torch.device(args.device)
    cpu, skip = announce_cpu(device, args.amp)
    if skip:
        return dict(skipped=skip, cpu=cpu)
    register_all_modules()
    b, size = args.batch_size, args.image_size
    built = {name: build_mmspectral(path, size, device) for name, path in CONFIGS.items()}
    ours = {name: model for name, (model, _) in built.items()}
    first = next(iter(ours.values()))
    # The teacher stays out of state_dict() (models.utils.keep_out_of_checkpoints): read its tensors directly.
    teacher_state = {k: v.detach().clone() for k, v in persistent_tensors(first.proxy_teacher).items()}
    for model in ours.values():  # one set of teacher weights for all
        model.proxy_teacher.load_state_dict(teacher_state)
    official, teacher, loss_module = build_official(args.titok_repo, teacher_state, size, device)
    torch.manual_seed(0)
    images = torch.rand(b, 3, size, size, device=device)

    def amp():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)

    def plain_optimiser(model):
        params = [p for p in model.parameters() if p.requires_grad]
        return params, torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-4)

    def config_optimiser(model, optim_cfg):
        # the config's optimiser as MMEngine's constructor builds it for training the tokenizer
        opt = build_optim_wrapper(model, optim_cfg.copy()).optimizer
        return [p for group in opt.param_groups for p in group['params']], opt

    steps = {}
    for name, model in ours.items():
        params, opt = (plain_optimiser(model) if args.same_optimizer
                       else config_optimiser(model, built[name][1]))

        def step(model=model, params=params, opt=opt):
            with amp():
                losses = model.autoencoder_losses(images)  # the B-64 configs take images in [0, 1]
            sum(v for k, v in losses.items() if k.startswith('loss_')).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        steps[name] = step
    params, opt = plain_optimiser(official) if args.same_optimizer else official_optimiser(official)

    def official_step():
        with amp():
            codes = teacher.encode(images)
            logits, extra = official(images)
            loss, _ = loss_module(codes, logits, extra)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    steps['official TiTok'] = official_step
    if device.type == 'cpu' and not args.no_wait:
        wait_until_idle()
    times, foreign = measure_alternating(steps, args.repeats, device)
    med = {name: statistics.median(t) for name, t in times.items()}
    ref = med['official TiTok']
    params_m = {name: sum(p.numel() for p in m.tok.parameters()) / 1e6 for name, m in ours.items()}
    params_m['official TiTok'] = sum(p.numel() for p in official.parameters()) / 1e6
    optimisers = 'plain AdamW for all' if args.same_optimizer else "each one's training optimiser"
    lines = [f'stage-1 step, batch {b}, {size} px, {"bf16 autocast" if args.amp else "fp32"}, {optimisers}, '
             f'{torch.get_num_threads()} threads, median of {args.repeats}; foreign CPU time {foreign:.1f} s',
             '', '| implementation | tokenizer params (M) | s / step | images / s | vs official |',
             '|---|---|---|---|---|']
    for name in ('official TiTok', *ours):
        lines.append(f'| {name} | {params_m[name]:.1f} | {med[name]:.3f} | {b / med[name]:.2f} | '
                     f'{med[name] / ref:.3f}x |')
    table = '\n'.join(lines) + '\n'
    print(table)
    result = dict(batch_size=b, image_size=size, amp=args.amp, same_optimizer=args.same_optimizer,
                  seconds=times, median_seconds=med,
                  ratio_to_official={k: v / ref for k, v in med.items()}, foreign_cpu_s=foreign,
                  tokenizer_params_m=params_m)
    write_report(args.out, 'titok_official', table, result)
    return result


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
