"""2x super-resolution judged against ground truth on EmbeddedShapes (paper section 4.4, where it shows).

Table 3 super-resolves generated samples, which have no 2x original, and the paper judges them by FID. Here
images are rendered at 2S, area-down-sampled to S (the tokenizer's size, quantised to 8 bits as samples are)
and super-resolved back to 2S: bicubic up-sampling (the baseline), SpectralAR-Stride and SpectralAR-Patch
(``GeneratorModel.super_resolve``), each keeping the tokens whose cut-off ``w_k`` is at most a given band and
generating the rest. Every result is compared with the 2S render: PSNR over the whole image and per DCT band
of the 2S grid (:func:`~mmspectral.evaluation.functional.band_psnr`; the S px input holds the band below S,
only generation can add the band above), PSNR of its S px area-down-sampling against the input (does it keep
what it was given), and the class accuracy, Frechet distance and precision / recall of a probe that sees 2S px
(:func:`~mmspectral.evaluation.sample_quality.probe_quality`).
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from mmspectral.datasets.embedded import class_names, class_set_of
from .embedded_classifier import load_or_train_shapes_classifier, render_batch
from .functional import band_psnr, psnr
from .sample_quality import probe_quality

__all__ = ['SUPERRES_SEED', 'superres_ground_truth', 'area_downsample']

#: Render seed of the ground-truth images: no training config (0-2), probe (1234, 1235) or sample judge (7)
#: draws it.
SUPERRES_SEED = 11


def area_downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size, size) by averaging whole blocks (H a multiple of ``size``)."""
    if images.shape[-1] % size or images.shape[-2] % size:
        raise ValueError(f'area_downsample needs sides that are multiples of {size}, got '
                         f'{tuple(images.shape[-2:])}.')
    return F.interpolate(images.float(), size=(size, size), mode='area')


def _quantise(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255).round() / 255


@torch.no_grad()
def superres_ground_truth(model, probe: str, per_class: int = 20, cutoffs: Optional[Sequence[int]] = None,
                          modes: Sequence[str] = ('stride', 'patch'), seed: int = SUPERRES_SEED,
                          sample_seed: int = 0, batch_size: int = 50, class_set: Optional[str] = None,
                          probe_steps: int = 250, **sampling) -> Dict[str, object]:
    """Super-resolve down-sampled renders and compare with the renders.

    Args:
        model: a trained ``GeneratorModel`` of 10 EmbeddedShapes classes at S px.
        probe: the file of a probe that sees 2S px (``input_size`` 2S); trained there (``probe_steps``
            steps) when missing.
        per_class: images per class (class-balanced, label = index % 10).
        cutoffs: kept bands (``keep_cutoff`` of ``super_resolve``, in pixels of S); default S / 16, S / 8,
            S / 4, S / 2 and S (all tokens taken from the up-sampled sub-images: the tokenizer alone, nothing
            generated).
        modes: sub-image modes, each run at every cut-off.
        seed: render seed of the images; ``sample_seed``: batch b is super-resolved with ``sample_seed + b``.
        class_set: the EmbeddedShapes class set; default the one of ``model.class_names``.
        sampling: ``generate`` options over the model's defaults.

    Returns a dict: ``rows`` (one per method: ``name``, ``mode``, ``keep_cutoff``, ``keep_tokens``, ``psnr``,
    ``bands`` (``'w{lo}-{hi}'`` -> dB), ``input_psnr``, ``class_accuracy``, ``probe_fd``, ``probe_precision``,
    ``probe_recall``), ``edges`` (the band edges on the 2S grid), ``real`` (the probe on the 2S renders
    themselves), ``images`` (name -> (M, 3, 2S, 2S) in [0, 1], with ``'render'`` and ``'input'``, the S px
    input shown at 2S by pixel repetition) and ``labels`` (M,).
    """
    if per_class < 1:
        raise ValueError(f'superres_ground_truth: per_class must be at least 1, got {per_class}.')
    s = model.tokenizer.image_size
    num_classes = model.gen.num_classes
    if class_set is None:
        class_set = class_set_of(getattr(model, 'class_names', None) or ())
    if num_classes != len(class_names(class_set)):
        raise ValueError(f'superres_ground_truth renders the {len(class_names(class_set))} EmbeddedShapes '
                         f'{class_set!r} classes; the generator has {num_classes} classes.')
    cutoffs = [s // 16, s // 8, s // 4, s // 2, s] if cutoffs is None else [int(c) for c in cutoffs]
    if any(not 1 <= c <= s for c in cutoffs):
        raise ValueError(f'superres_ground_truth: cut-offs must lie in [1, {s}] (pixels of the {s} px '
                         f'image), got {cutoffs}.')
    load_or_train_shapes_classifier(probe, 2 * s, class_set, steps=probe_steps, input_size=2 * s)
    renders, labels = render_batch(range(per_class * num_classes), 2 * s, seed, num_classes, class_set)
    inputs = _quantise(area_downsample(renders, s))  # (M, 3, S, S)
    device = next(model.gen.parameters()).device
    methods = [dict(name='bicubic', mode='bicubic', keep_cutoff=None)]
    methods += [dict(name=f'{mode} w<={c}', mode=mode, keep_cutoff=c) for mode in modes for c in cutoffs]
    edges = sorted({0, s // 4, s // 2, s, 2 * s})
    results = {}
    for method in methods:
        out = []
        for b, start in enumerate(range(0, len(labels), batch_size)):
            x = inputs[start:start + batch_size].to(device)
            y = labels[start:start + batch_size].to(device)
            options = {} if method['mode'] == 'bicubic' else dict(
                keep_cutoff=method['keep_cutoff'], seed=sample_seed + b,
                **sampling)
            out.append(model.super_resolve(x, y, mode=method['mode'], **options).float().cpu())
        results[method['name']] = _quantise(torch.cat(out))  # (M, 3, 2S, 2S)
    real = probe_quality(renders, labels, probe, image_size=2 * s, class_set=class_set)
    rows = []
    for method in methods:
        images = results[method['name']]
        judged = probe_quality(images, labels, probe, image_size=2 * s, class_set=class_set)
        keep = None if method['keep_cutoff'] is None else model.super_resolution_prefix(method['keep_cutoff'])
        rows.append(dict(method, keep_tokens=keep, psnr=float(psnr(images, renders).mean()),
                         bands=band_psnr(images, renders, edges),
                         input_psnr=float(psnr(area_downsample(images, s), inputs).mean()),
                         **{k: judged[k] for k in ('class_accuracy', 'probe_fd', 'probe_precision',
                                                   'probe_recall')}))
    shown = dict(render=renders, input=F.interpolate(inputs, scale_factor=2, mode='nearest'), **results)
    return dict(rows=rows, edges=edges, image_size=s, num_images=len(labels), class_set=class_set,
                real=dict(class_accuracy=real['class_accuracy'], probe_fd=real['probe_fd'],
                          probe_real_accuracy=real['probe_real_accuracy']),
                images=shown, labels=labels)
