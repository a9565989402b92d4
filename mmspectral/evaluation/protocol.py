"""The class-balanced sampling protocol every generation measure follows (the field's: 50 samples per class
for FID-50k), in one place.

Samples are drawn in label order (``per_class`` of class 0, then of class 1, ...), cut into batches of
``batch_size``; batch ``b`` is sampled with the RNG of ``seed + b`` and, on ``world_size`` processes, by rank
``b % world_size``. So the images are the same for any number of processes and can be resumed batch by
batch. tools/sample.py, ``GenerationMetric``, ``sample_quality.class_balanced_samples`` and
tools/analysis/shapes_class_accuracy.py all draw through :func:`balanced_batches` / :func:`balanced_samples`.
"""
from dataclasses import dataclass
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch

__all__ = ['balanced_labels', 'Batch', 'balanced_batches', 'balanced_samples']


def balanced_labels(num_classes: int, per_class: int) -> np.ndarray:
    """0, 0, ..., 1, 1, ...: exactly ``per_class`` samples of every class, in label order."""
    return np.repeat(np.arange(num_classes), per_class)


@dataclass(frozen=True)
class Batch:
    """One batch of the protocol: its ``index`` b, its ``seed`` (``seed + b``), the sample ``indices`` it
    holds and their ``labels``."""
    index: int
    seed: int
    indices: np.ndarray
    labels: np.ndarray


def balanced_batches(num_classes: int, per_class: int, batch_size: int, seed: int = 0, rank: int = 0,
                     world_size: int = 1) -> List[Batch]:
    """The batches of rank ``rank`` (of ``world_size``) under the protocol."""
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
    labels = balanced_labels(num_classes, per_class)
    batches = []
    for b, start in enumerate(range(0, len(labels), batch_size)):
        if b % world_size == rank:
            indices = np.arange(start, min(start + batch_size, len(labels)))
            batches.append(Batch(b, seed + b, indices, labels[indices]))
    return batches


@torch.no_grad()
def balanced_samples(model, num_classes: int, per_class: int, batch_size: int, seed: int = 0, rank: int = 0,
                     world_size: int = 1, decode: bool = True,
                     **options) -> Iterator[Tuple[Batch, Dict[str, torch.Tensor]]]:
    """``(batch, model.sample(labels, decode, seed=batch.seed, **options))`` for each batch of this rank;
    ``model`` is a GeneratorModel (its sampling surface merges ``options`` over the config's)."""
    device = _device(model)
    for batch in balanced_batches(num_classes, per_class, batch_size, seed, rank, world_size):
        labels = torch.as_tensor(batch.labels, device=device)
        yield batch, model.sample(labels, decode=decode, seed=batch.seed, **options)


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device('cpu')
