"""Generative-image metrics inside training and testing: rFID of a tokenizer, gFID / IS / precision /
recall of a generator.

* :class:`ReconstructionFIDMetric` reads ``TokenizerModel.predict``'s data samples: the Frechet distance
  between the features of the full-token reconstructions and those of the same validation images (or of a
  reference file).
* :class:`GenerationMetric` samples class-balanced images itself (``generate(model)``, called by
  :class:`~mmspectral.engine.GenerationValLoop` / ``GenerationTestLoop`` after the dataloader pass), so its
  numbers do not depend on the validation set or on the number of ranks.

Both extract features with a FEATURE_EXTRACTORS network (the FID Inception by default; its weights are a path
you give) and build it on first use, so that a config naming weights that are not on this machine still loads.
Images are rounded to 8-bit levels before extraction, as the PNGs of ``tools/sample.py`` are.
"""
import logging
import time
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import broadcast_object_list, collect_results, get_dist_info, is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmspectral.registry import METRICS
from ..generative import (BaseFeatureExtractor, FeatureSet, build_feature_extractor, feature_statistics,
                          features_from_npz, frechet_distance, frechet_distance_from_features,
                          inception_score, precision_recall)
from ..protocol import balanced_labels, balanced_samples

__all__ = ['ReconstructionFIDMetric', 'GenerationMetric', 'frechet_distance_to']

ExtractorCfg = Union[dict, BaseFeatureExtractor, None]


def frechet_distance_to(pool: np.ndarray, reference: FeatureSet) -> float:
    """FID of (N, D) ``pool`` features against ``reference``: exact on both feature sets when the reference's
    statistics come from its features, else against its stored ``mu`` / ``sigma``."""
    if reference.stats_from_features and reference.pool is not None:
        return frechet_distance_from_features(pool, reference.pool)
    if reference.mu is None or reference.sigma is None:
        raise ValueError(f'The reference ({reference.source}) has neither features nor mu/sigma statistics.')
    return frechet_distance(*feature_statistics(pool), reference.mu, reference.sigma)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (B, 3, H, W) -> uint8 (B, 3, H, W), rounded as a saved PNG would be."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


class _FeatureMetricMixin:
    """Lazily built extractor and cached reference features, shared by the two metrics."""

    #: arguments that name a file, for the config checks (mmspectral/engine/component_checks.py)
    path_arguments = {'inception_weights': 'It is pt_inception-2015-12-05-6726825d.pth (docs/evaluation.md).',
                      'reference': 'It is an npz of reference images or statistics (tools/eval_fid.py '
                                   '--save-ref-stats; docs/evaluation.md).'}

    def _init_features(self, extractor: ExtractorCfg, inception_weights: Optional[str],
                       reference: Optional[str], use_reference_stats: bool, batch_size: int) -> None:
        if extractor is not None and inception_weights is not None:
            raise ValueError(f'{type(self).__name__}: give either inception_weights (for the default '
                             'InceptionV3FID) or extractor=dict(type=..., ...), not both; put the weights '
                             'in the extractor config instead: '
                             "extractor=dict(type='InceptionV3FID', weights=...).")
        default = dict(type='InceptionV3FID', weights=inception_weights)
        self.extractor_cfg = extractor if extractor is not None else default
        self.reference = reference
        self.use_reference_stats = use_reference_stats
        self.batch_size = batch_size
        self._extractor: Optional[BaseFeatureExtractor] = None
        self._reference_set: Optional[FeatureSet] = None

    def feature_extractor(self, device: Union[str, torch.device, None] = None) -> BaseFeatureExtractor:
        """The feature extractor, built on the first call (on ``device`` unless its config names one).

        Raises :class:`~mmspectral.evaluation.generative.MissingFeatureWeightsError` when the InceptionV3FID
        weights file is not given or not there.
        """
        if self._extractor is None:
            default_args = None if device is None else dict(device=device)
            cfg = self.extractor_cfg
            if isinstance(cfg, dict) and 'device' in cfg:
                default_args = None
            self._extractor = build_feature_extractor(cfg, default_args=default_args)
        return self._extractor

    def reference_features(self) -> FeatureSet:
        """The reference's :class:`FeatureSet`, read (or extracted) once and kept."""
        if self._reference_set is None:
            start = time.time()
            self._reference_set = features_from_npz(self.reference, self.feature_extractor(), self.batch_size,
                                                    use_stored_stats=self.use_reference_stats)
            print_log(f'{type(self).__name__}: reference {self._reference_set.source}, '
                      f'{self._reference_set.num_images} images ({time.time() - start:.1f} s; kept for the '
                      'next evaluations).', logger='current')
        return self._reference_set

    def _features(self, images: torch.Tensor, keys: Sequence[str]) -> Dict[str, np.ndarray]:
        """(B, 3, H, W) images in [0, 1] -> the requested features, float32 (B, D)."""
        feats = self.feature_extractor(images.device).extract(to_uint8(images), batch_size=self.batch_size)
        return {k: feats[k].astype(np.float32) for k in keys if k in feats}


@METRICS.register_module()
class ReconstructionFIDMetric(_FeatureMetricMixin, BaseMetric):
    """rFID: the Frechet distance between features of a tokenizer's reconstructions and of the real images.

    Reads the data samples of ``TokenizerModel.predict``: ``image`` and ``recons`` (dict k -> image in [0, 1],
    (3, H, W)); the reconstruction from the largest k (all tokens) is scored unless ``prefix_length`` picks
    another decoded prefix. Features are kept per image (float32), so the metric works under DDP like any
    BaseMetric. Reports ``rfid`` and, with ``inception_score=True``, ``is`` / ``is_std`` of the
    reconstructions (needs an extractor with logits).

    Args:
        extractor: FEATURE_EXTRACTORS config or built extractor; default
            ``dict(type='InceptionV3FID', weights=inception_weights)``.
        inception_weights: path to ``pt_inception-2015-12-05-6726825d.pth`` for the default extractor.
        reference: None: against the processed validation images themselves. Or an npz read by
            ``features_from_npz``: a statistics file (``tools/eval_fid.py --save-ref-stats``), images
            (``arr_0``) or an ADM reference batch; then the real images are not run through the network.
        use_reference_stats: with an ADM batch, use its stored mu/sigma (TF graph) rather than its images.
        prefix_length: the decoded prefix k to score; None: the largest one.
        inception_score: also report the IS of the reconstructions.
        split_size: IS split size (ADM: 5000).
        batch_size: images per forward pass of the extractor.
        collect_device, collect_dir, prefix: as MMEngine's BaseMetric.
    """

    default_prefix = 'recon'

    def __init__(self, extractor: ExtractorCfg = None, inception_weights: Optional[str] = None,
                 reference: Optional[str] = None, use_reference_stats: bool = False,
                 prefix_length: Optional[int] = None, inception_score: bool = False, split_size: int = 5000,
                 batch_size: int = 50, collect_device: str = 'cpu', collect_dir: Optional[str] = None,
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self._init_features(extractor, inception_weights, reference, use_reference_stats, batch_size)
        self.prefix_length = prefix_length
        self.with_inception_score = inception_score
        self.split_size = split_size

    def _recon(self, sample: dict) -> torch.Tensor:
        if 'recons' not in sample or 'image' not in sample:
            raise KeyError(f'ReconstructionFIDMetric reads the data samples of TokenizerModel.predict '
                           f'(image, recons); got keys {sorted(sample)}.')
        recons = sample['recons']
        k = max(recons) if self.prefix_length is None else self.prefix_length
        if k not in recons:
            raise KeyError(f'ReconstructionFIDMetric: prefix_length={k} was not decoded (decoded: '
                           f'{sorted(recons)}); add it to the model\'s eval_prefix_lengths.')
        return recons[k]

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        if not data_samples:
            return
        fake = torch.stack([self._recon(s) for s in data_samples])  # (B, 3, H, W) in [0, 1]
        keys = ('pool', 'logits') if self.with_inception_score else ('pool', )
        fake_feats = self._features(fake, keys)
        if self.with_inception_score and 'logits' not in fake_feats:
            raise ValueError(f'ReconstructionFIDMetric(inception_score=True): the extractor '
                             f'{self.feature_extractor().name} gives no logits; use InceptionV3FID or drop '
                             'the IS.')
        real_pool = None
        if self.reference is None:
            real = torch.stack([s['image'] for s in data_samples]).to(fake.device)
            real_pool = self._features(real, ('pool', ))['pool']
        for i in range(len(data_samples)):
            result = {f'fake_{k}': v[i] for k, v in fake_feats.items()}
            if real_pool is not None:
                result['real_pool'] = real_pool[i]
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        fake = np.stack([r['fake_pool'] for r in results])  # (M, D)
        if self.reference is None:
            real = np.stack([r['real_pool'] for r in results])
            metrics = dict(rfid=frechet_distance_from_features(fake, real))
        else:
            metrics = dict(rfid=frechet_distance_to(fake, self.reference_features()))
        if self.with_inception_score:
            metrics['is'], metrics['is_std'] = inception_score(np.stack([r['fake_logits'] for r in results]),
                                                               self.split_size)
        return metrics


@METRICS.register_module()
class GenerationMetric(_FeatureMetricMixin, BaseMetric):
    """gFID, Inception Score and precision / recall of class-balanced samples of a generator.

    The samples do not come from the validation dataloader: ``generate(model)``, called by GenerationValLoop /
    GenerationTestLoop after the dataloader pass, samples ``per_class`` images of each of the first
    ``num_classes`` classes in the order of ``tools/sample.py`` (labels 0, 0, ..., 1, 1, ...), cut into
    batches of ``batch_size``; batch b runs on rank ``b % world_size`` with the RNG of ``seed + b``
    (``sample(..., seed=seed + b)``), so the images are the same for any number of ranks. Features
    are kept per sample with its index; ``evaluate`` gathers all of them in index order, whatever the
    validation set's size.

    Reports ``num_samples`` and, from ``metrics``: ``fid`` (needs ``reference``), ``is`` / ``is_std`` (needs
    an extractor with logits), ``precision`` / ``recall`` (k nearest neighbours; need ``reference`` features).
    Without ``reference`` only the IS and ``num_samples`` are reported.

    Args:
        per_class: samples per class (the protocol's 50 gives 50,000 for ImageNet: set it lower for checks
            during training).
        num_classes: classes to sample; None: ``model.gen.num_classes``.
        batch_size: images per sampling batch (and per extractor pass).
        seed: batch b uses seed + b.
        sampling: overrides of the model's ``sampling`` settings (cfg_scale, top_k, ...).
        extractor, inception_weights: as :class:`ReconstructionFIDMetric`.
        reference: npz of the real images: a statistics file (``tools/eval_fid.py --save-ref-stats``;
            cheapest), images (``arr_0``), or an ADM reference batch. Required for FID, precision and recall.
        use_reference_stats: with an ADM batch, FID against its stored mu/sigma.
        k: nearest neighbours of precision / recall (ADM: 3).
        metrics: a subset of ('fid', 'is', 'precision', 'recall').
        split_size: IS split size (ADM: 5000).
        collect_device, collect_dir, prefix: as MMEngine's BaseMetric.
    """

    default_prefix = 'gen'
    METRIC_NAMES = ('fid', 'is', 'precision', 'recall')

    def __init__(self, per_class: int = 50, num_classes: Optional[int] = None, batch_size: int = 32,
                 seed: int = 0, sampling: Optional[dict] = None, extractor: ExtractorCfg = None,
                 inception_weights: Optional[str] = None, reference: Optional[str] = None,
                 use_reference_stats: bool = False, k: int = 3,
                 metrics: Sequence[str] = ('fid', 'is', 'precision', 'recall'), split_size: int = 5000,
                 collect_device: str = 'cpu', collect_dir: Optional[str] = None,
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self._init_features(extractor, inception_weights, reference, use_reference_stats, batch_size)
        unknown = sorted(set(metrics) - set(self.METRIC_NAMES))
        if unknown:
            raise ValueError(f'GenerationMetric: unknown metrics {unknown}; choose from {self.METRIC_NAMES}.')
        if per_class < 1 or batch_size < 1:
            raise ValueError(f'GenerationMetric: per_class and batch_size must be >= 1, got {per_class} and '
                             f'{batch_size}.')
        self.metrics = tuple(metrics)
        if reference is None and set(self.metrics) & {'fid', 'precision', 'recall'}:
            print_log('GenerationMetric: no reference, so no FID, precision or recall: only the IS and '
                      'num_samples are reported. Set reference=<statistics or images npz> for them.',
                      logger='current', level=logging.WARNING)
            self.metrics = tuple(m for m in self.metrics if m == 'is')
        self.per_class = per_class
        self.num_classes = num_classes
        self.seed = seed
        self.sampling = dict(sampling or {})
        self.k = k
        self.split_size = split_size
        self._num_samples: Optional[int] = None

    def process(self, data_batch, data_samples) -> None:
        """Nothing: the samples come from :meth:`generate`, not from the validation data."""

    @torch.no_grad()
    def generate(self, model) -> None:
        """Sample this rank's batches with ``model`` (a GeneratorModel: ``gen.num_classes``,
        ``sample(labels, decode=True, rng=..., **sampling)`` -> dict(images in [0, 1] (B, 3, H, W))) and
        keep their features."""
        if is_model_wrapper(model):
            model = model.module
        rank, world = get_dist_info()
        num_classes = self.num_classes or model.gen.num_classes
        labels = balanced_labels(num_classes, self.per_class)
        num_batches = -(-len(labels) // self.batch_size)
        keys = ('pool', 'logits') if 'is' in self.metrics else ('pool', )
        self.results.clear()
        start_time = time.time()
        for batch, out in balanced_samples(model, num_classes, self.per_class, self.batch_size, self.seed,
                                           rank, world, decode=True, **self.sampling):
            feats = self._features(out['images'], keys)
            for j, i in enumerate(batch.indices):
                self.results.append(dict(index=int(i), label=int(labels[i]),
                                         **{key: value[j] for key, value in feats.items()}))
        self._num_samples = len(labels)
        print_log(f'GenerationMetric: {len(labels)} samples ({self.per_class} per class, {num_classes} '
                  f'classes) in {num_batches} batches over {world} rank(s); this rank: '
                  f'{len(self.results)} in {time.time() - start_time:.1f} s.', logger='current')

    def evaluate(self, size: int) -> dict:
        """Gather every rank's samples (``size``, the validation set's length, is not used), compute the
        metrics on rank 0 and broadcast them."""
        if self._num_samples is None:
            raise RuntimeError('GenerationMetric has no samples: its generate(model) was not called. Run it '
                               "under val_cfg=dict(type='GenerationValLoop') or test_cfg=dict(type="
                               "'GenerationTestLoop').")
        num, self._num_samples = self._num_samples, None
        if self.collect_device == 'cpu':
            results = collect_results(self.results, num, self.collect_device, tmpdir=self.collect_dir)
        else:
            results = collect_results(self.results, num, self.collect_device)
        self.results.clear()
        metrics = [None]
        if is_main_process():
            # collect_results interleaves the ranks' lists sample by sample; batches were dealt by batch.
            results = sorted(results, key=lambda r: r['index'])
            indices = [r['index'] for r in results]
            if indices != list(range(num)):
                raise RuntimeError(f'GenerationMetric: gathered {len(indices)} samples, expected indices '
                                   f'0..{num - 1} exactly once.')
            computed = self.compute_metrics(results)
            metrics = [{f'{self.prefix}/{k}' if self.prefix else k: v for k, v in computed.items()}]
        broadcast_object_list(metrics)
        return metrics[0]

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """``results`` in index order: dicts with index, label, pool (D,) and, for the IS, logits (C,)."""
        pool = np.stack([r['pool'] for r in results])  # (M, D)
        metrics: Dict[str, float] = dict(num_samples=len(results))
        reference = self.reference_features() if self.reference is not None else None
        if 'fid' in self.metrics:
            metrics['fid'] = frechet_distance_to(pool, reference)
        if 'is' in self.metrics:
            if 'logits' in results[0]:
                metrics['is'], metrics['is_std'] = inception_score(np.stack([r['logits'] for r in results]),
                                                                   self.split_size)
            else:
                print_log(f'GenerationMetric: the extractor {self.feature_extractor().name} gives no '
                          'logits: no IS.', logger='current', level=logging.WARNING)
        if {'precision', 'recall'} & set(self.metrics):
            if reference.pool is None:
                raise ValueError(f'GenerationMetric: precision/recall need the reference\'s features, and '
                                 f'{self.reference} holds statistics only. Pass its images, or a statistics '
                                 'file written by tools/eval_fid.py --save-ref-stats, or drop them from '
                                 'metrics.')
            precision, recall = precision_recall(reference.pool, pool, self.k)
            if 'precision' in self.metrics:
                metrics['precision'] = precision
            if 'recall' in self.metrics:
                metrics['recall'] = recall
        return metrics
