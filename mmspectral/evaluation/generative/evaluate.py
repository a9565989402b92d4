"""From npz files to FID, sFID, IS, precision and recall (what tools/eval_fid.py runs)."""
import json
from typing import Dict, List, Optional, Union

import numpy as np
import torch

from .extractors import BaseFeatureExtractor
from .npz_io import (ADM_STAT_KEYS, NpzFormatError, iter_npz_images, load_feature_set, load_stored_statistics,
                     npz_arrays)
from .statistics import (FeatureSet, frechet_distance, frechet_distance_from_features, inception_score,
                         precision_recall)

__all__ = ['features_from_npz', 'evaluate_feature_sets']


def _check_same_extractor(path: str, stored: Dict[str, str], current: Dict[str, str]) -> None:
    if stored != current:
        raise ValueError(f'{path} holds features of {json.dumps(stored, sort_keys=True)}, but this '
                         f'evaluation uses {json.dumps(current, sort_keys=True)}. Features of different '
                         'networks or weights do not compare: compute the statistics again with this '
                         'extractor (pass the images npz instead), or evaluate with the extractor and '
                         'weights the file was made with.')


def features_from_npz(path: str, extractor: BaseFeatureExtractor, batch_size: int = 50,
                      use_stored_stats: bool = False, progress: bool = False) -> FeatureSet:
    """The :class:`FeatureSet` of an npz: a statistics file, images (``arr_0``), or stored ADM statistics.

    Args:
        path: samples npz, reference batch, or a statistics file from :func:`save_feature_set`.
        extractor: the network; a statistics file must have been written with the same one (equal
            ``describe()``).
        batch_size: images per forward pass.
        use_stored_stats: for a file with both images and ADM statistics (``mu``, ``sigma``, ``mu_s``,
            ``sigma_s``, from the TensorFlow graph): use the stored statistics for FID/sFID (features of the
            images still feed precision/recall). Default: statistics of this network's features on the images,
            so that both sides of the FID come from the same network.
        progress: show a progress bar.
    """
    arrays = npz_arrays(path)
    meta = extractor.describe()
    if 'format' in arrays:
        features = load_feature_set(path)
        _check_same_extractor(path, features.meta, meta)
        return features
    has_stats = all(k in arrays for k in ADM_STAT_KEYS[:2])
    if 'arr_0' not in arrays:
        if not has_stats:
            raise NpzFormatError(f'{path} holds neither images nor statistics '
                                 f'({", ".join(sorted(arrays)) or "no arrays"}). Expected \'arr_0\' (uint8 '
                                 "(N, H, W, 3) images), 'mu' and 'sigma' (ADM reference statistics), or a "
                                 'statistics file written by tools/eval_fid.py.')
        stored = load_stored_statistics(path, arrays)
        return FeatureSet(num_images=0, meta=dict(extractor='stored statistics (not computed here)'),
                          source=f'stored mu/sigma of {path}', **stored)
    num, batches = iter_npz_images(path, batch_size)
    feats = extractor.extract_batches(batches, total=num if progress else None)
    features = FeatureSet.from_features(feats, meta, source=f'images of {path}')
    if use_stored_stats:
        if not has_stats:
            raise NpzFormatError(f'{path} has no stored statistics (mu, sigma) to use; drop the request for '
                                 'them (--use-ref-stats).')
        for key, value in load_stored_statistics(path, arrays).items():
            setattr(features, key, value)
        features.stats_from_features = False
        features.source += ' (FID statistics: the stored mu/sigma)'
    return features


def _fid(a: FeatureSet, b: FeatureSet, spatial: bool) -> Optional[float]:
    feats_a, feats_b = (a.spatial, b.spatial) if spatial else (a.pool, b.pool)
    stats_a = (a.mu_s, a.sigma_s) if spatial else (a.mu, a.sigma)
    stats_b = (b.mu_s, b.sigma_s) if spatial else (b.mu, b.sigma)
    if a.stats_from_features and b.stats_from_features and feats_a is not None and feats_b is not None:
        return frechet_distance_from_features(feats_a, feats_b)
    if any(s is None for s in stats_a + stats_b):
        return None
    return frechet_distance(*stats_a, *stats_b)


def evaluate_feature_sets(samples: FeatureSet, reference: FeatureSet, k: int = 3, split_size: int = 5000,
                          chunk_size: int = 5000, device: Union[str, torch.device] = 'cpu',
                          spatial: bool = True) -> Dict[str, object]:
    """FID, sFID, IS, precision and recall of ``samples`` against ``reference``, as the ADM evaluator defines
    them; a metric whose inputs are missing is None and ``notes`` says why.

    Args:
        k: neighbourhood size of precision/recall (ADM: 3).
        split_size: IS split size (ADM: 5000).
        chunk_size: block size of the pairwise distances (memory ~ chunk_size^2 floats).
        device: where the distances are computed.
        spatial: compute sFID when spatial statistics are there.
    """
    notes: List[str] = []
    if samples.mu is not None and reference.mu is not None and samples.mu.shape != reference.mu.shape:
        raise ValueError(f'The samples have {samples.mu.shape[0]}-d features and the reference '
                         f'{reference.mu.shape[0]}-d ones: they come from different extractors.')
    out: Dict[str, object] = dict(fid=_fid(samples, reference, spatial=False))
    out['sfid'] = _fid(samples, reference, spatial=True) if spatial else None
    if out['sfid'] is None and spatial:
        notes.append('sFID: spatial statistics are missing on one side (the extractor gives none, or the '
                     'file has no mu_s/sigma_s).')
    if samples.logits is not None:
        out['inception_score'], out['inception_score_std'] = inception_score(samples.logits, split_size)
        out['inception_score_splits'] = int(np.ceil(len(samples.logits) / split_size))
    else:
        out['inception_score'] = out['inception_score_std'] = None
        notes.append('IS: the samples have no logits (extractor without a classifier, or stored statistics).')
    if samples.pool is not None and reference.pool is not None:
        out['precision'], out['recall'] = precision_recall(reference.pool, samples.pool, k, chunk_size,
                                                           device)
    else:
        out['precision'] = out['recall'] = None
        notes.append('precision/recall: features of both sets are needed; one side has statistics only.')
    if samples.stats_from_features != reference.stats_from_features and out['fid'] is not None:
        notes.append('FID mixes statistics of this network with stored statistics (the TF graph\'s, for ADM '
                     'reference batches): the number is comparable with neither evaluator exactly.')
    dim = samples.mu.shape[0] if samples.mu is not None else None
    for name, count in (('samples', samples.num_images), ('reference', reference.num_images)):
        if not count:  # stored statistics: their image count is not known here
            continue
        if dim is not None and count <= dim:
            notes.append(f'{count} {name} for {dim}-d features: the covariance is singular and FID, sFID and '
                         'precision/recall from so few images are meaningless (a smoke test at most).')
        elif count < 50000:
            notes.append(f'{count} {name}: the protocol uses 50,000 samples (ADM); FID from fewer is biased '
                         'upwards and not comparable with published numbers.')
    out.update(num_samples=samples.num_images, num_reference=reference.num_images, k=k, split_size=split_size,
               samples_source=samples.source, reference_source=reference.source, notes=notes)
    return out
