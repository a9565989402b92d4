"""Quality of class-balanced samples, outside the training loop: for the benchmark and the ablation tools.

Two judges, as in docs/evaluation.md:

* EmbeddedShapes (no ImageNet network applies): the probe classifier of tools/train_probe.py gives the class
  accuracy of the samples and, in its feature space, the Frechet distance and precision / recall against real
  images drawn with a seed no training config uses;
* ImageNet-like data: FID, IS, precision and recall with the FID Inception network against a reference batch
  (the same code as tools/eval_fid.py).
"""
import os.path as osp
from typing import Dict, Optional, Union

import numpy as np
import torch

from mmspectral.datasets.embedded import class_set_of
from mmspectral.spectral import lowpass
from .embedded_classifier import load_or_train_shapes_classifier, load_shapes_classifier, render_batch
from .functional import progression_steps, psnr
from .generative import (InceptionV3FID, evaluate_feature_sets, features_from_npz,
                         frechet_distance_from_features, precision_recall)
from .generative.statistics import FeatureSet
from .protocol import balanced_samples

__all__ = ['class_balanced_samples', 'probe_quality', 'inception_quality', 'generator_quality',
           'progression_quality', 'PROBE_REAL_SEED']

#: Seed of the real EmbeddedShapes images the probe compares samples with (training configs use 0 and 1, the
#: probe trains on 1234 and is validated on 1235).
PROBE_REAL_SEED = 7


@torch.no_grad()
def class_balanced_samples(model, per_class: int, batch_size: int = 50, seed: int = 0,
                           num_classes: Optional[int] = None, **sampling) -> tuple:
    """``per_class`` samples of every class under the protocol of :mod:`.protocol` (batch b: seed
    ``seed + b``).

    Returns images (M, 3, H, W) in [0, 1] and labels (M,), in label order.
    """
    num_classes = num_classes or model.gen.num_classes
    images, labels = [], []
    for batch, out in balanced_samples(model, num_classes, per_class, batch_size, seed, **sampling):
        images.append(out['images'].float().cpu())
        labels.append(torch.from_numpy(batch.labels))
    return torch.cat(images), torch.cat(labels)


def _unit(images: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """uint8 (N, H, W, 3) numpy or (N, 3, H, W) tensor (uint8 or [0, 1] floats) -> float (N, 3, H, W)."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f'Expected uint8 images (N, H, W, 3), got shape {images.shape}.')
        return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


@torch.no_grad()
def probe_quality(images: Union[np.ndarray, torch.Tensor], labels, probe: Optional[str] = None,
                  num_real: Optional[int] = None, k: int = 3, image_size: Optional[int] = None,
                  class_set: Optional[str] = None) -> Dict[str, float]:
    """EmbeddedShapes samples judged by the probe classifier.

    Args:
        images: the samples (see :func:`_unit` for the layouts taken).
        labels: the class each sample was asked for (M,).
        probe: a probe file (tools/train_probe.py); trained and saved there when missing, trained and kept in
            memory when None.
        num_real: real images to compare with (class-balanced, seed :data:`PROBE_REAL_SEED`); default M.
        k: neighbours for precision / recall.
        image_size: the size real images are drawn at; default the samples' size.
        class_set: the EmbeddedShapes class set of the samples; default that of the probe file when it exists,
            else 'fine'.

    Returns ``class_accuracy``, ``probe_fd`` (Frechet distance of probe features, samples vs real),
    ``probe_precision``, ``probe_recall`` and ``probe_real_accuracy`` (the probe on held-out real images).
    """
    x = _unit(images)
    labels = torch.as_tensor(np.asarray(labels)).long().view(-1)
    if len(labels) != len(x):
        raise ValueError(f'{len(x)} images but {len(labels)} labels.')
    size = image_size or x.shape[-1]
    if probe and osp.isfile(probe):  # the file says which class set it judges
        classifier, real_accuracy, _ = load_shapes_classifier(probe, size, class_set)
    else:
        classifier, real_accuracy = load_or_train_shapes_classifier(probe, size, class_set or 'fine')
    real, _ = render_batch(range(num_real or len(x)), size, seed=PROBE_REAL_SEED,
                           class_set=classifier.class_set)

    def features(batch: torch.Tensor):
        feats = [classifier.features(batch[i:i + 256]) for i in range(0, len(batch), 256)]
        return torch.cat(feats)

    fake_feats, real_feats = features(x), features(real)
    predicted = classifier.head(fake_feats).argmax(1)
    precision, recall = precision_recall(real_feats.numpy(), fake_feats.numpy(), k=k)
    return dict(class_accuracy=float((predicted == labels).float().mean()),
                probe_fd=frechet_distance_from_features(fake_feats.numpy(), real_feats.numpy()),
                probe_precision=precision, probe_recall=recall, probe_real_accuracy=real_accuracy)


def inception_quality(images: Union[np.ndarray, torch.Tensor], ref: str, inception_weights: str,
                      device='cpu', batch_size: int = 50, k: int = 3) -> Dict[str, float]:
    """FID, IS, precision and recall of samples against a reference npz (images or statistics)."""
    extractor = InceptionV3FID(inception_weights, device=device)
    x = _unit(images)
    samples = FeatureSet.from_features(extractor.extract(x, batch_size=batch_size), extractor.describe())
    reference = features_from_npz(ref, extractor, batch_size=batch_size)
    result = evaluate_feature_sets(samples, reference, k=k)
    return {key: result[key] for key in ('fid', 'inception_score', 'precision', 'recall') if key in result}


def generator_quality(model, per_class: int = 20, batch_size: int = 50, seed: int = 0,
                      probe: Optional[str] = None, ref: Optional[str] = None,
                      inception_weights: Optional[str] = None, device='cpu') -> Dict[str, float]:
    """Quality columns of tools/benchmark.py for a trained GeneratorModel.

    With ``ref`` and ``inception_weights``: the Inception metrics. Otherwise, for a 10-class generator (the
    embedded dataset), the probe's. Otherwise nothing (an empty dict).
    """
    if ref is None and model.gen.num_classes != 10:
        return {}
    images, labels = class_balanced_samples(model, per_class, batch_size, seed)
    if ref is not None:
        if inception_weights is None:
            raise ValueError('FID against --ref needs --inception-weights (pt_inception-2015-12-05 weights).')
        return inception_quality(images, ref, inception_weights, device, batch_size)
    class_set = class_set_of(getattr(model, 'class_names', None) or ())
    return probe_quality(images, labels, probe, class_set=class_set)


@torch.no_grad()
def progression_quality(model, tokens: torch.Tensor, images: Optional[torch.Tensor] = None,
                        batch_size: int = 50) -> Dict[str, object]:
    """How a coarse-to-fine progression changes from prefix k - 1 to k (:func:`progression_steps`).

    ``model``: a GeneratorModel (``decode`` / ``encode`` in [0, 1]); ``tokens`` (B, N): generated samples'.
    Returns ``samples``; with real ``images`` (B, 3, S, S) in [0, 1] also ``reconstructions`` (their tokens'
    prefixes decoded: what the tokenizer itself shows, with each prefix's PSNR against the image) and, when
    the tokenizer has a frequency schedule,
    ``lowpass_targets`` (what a tokenizer that met its targets would show) with its ``omegas``.
    """
    def decode(ids):
        return torch.cat([model.decode(ids[i:i + batch_size]) for i in range(0, len(ids), batch_size)])

    n = tokens.shape[1]
    out = dict(samples=progression_steps([decode(tokens[:, :k]) for k in range(1, n + 1)]))
    if images is not None:
        ids = torch.cat([model.encode(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
        recons = [decode(ids[:, :k]) for k in range(1, n + 1)]
        out['reconstructions'] = progression_steps(recons)
        # whether each step moves the decode towards the image, not only whether it changes it
        out['reconstructions']['psnr_to_image'] = [float(psnr(r.clamp(0, 1), images).mean()) for r in recons]
        omegas = model.codec.cutoffs()
        if omegas is not None:
            out['lowpass_targets'] = progression_steps([lowpass(images, model.codec.cutoff(k)).clamp(0, 1)
                                                        for k in range(1, n + 1)])
            out['omegas'] = omegas
    return out
