"""Feature extractors for the generative metrics, registered in ``FEATURE_EXTRACTORS``.

Every extractor has the same interface::

    extractor.extract(images, batch_size=50) -> dict(pool=(N, D) float32, [logits=(N, C)], [spatial=(N, S)])

``images`` is a uint8 numpy array (N, H, W, 3) as in a samples npz, or a tensor (N, 3, H, W) that is uint8 in
[0, 255] or float in [0, 1]. ``extract_batches`` takes an iterable of such batches (a streamed npz). ``pool``
feeds FID and precision/recall, ``logits`` the Inception Score, ``spatial`` sFID; an extractor without logits
or spatial features leaves them out and those metrics are skipped.

A network of your own becomes an extractor in one of two ways:

* wrap it: ``dict(type='TorchModuleExtractor', model=dict(type='MyNet', ...), outputs=dict(pool='features'))``
  (the model from the MODELS registry or an ``nn.Module``; ``outputs`` maps feature names to its methods);
* register a class in your own file, imported through ``custom_imports`` (``--custom-imports`` of
  tools/eval_fid.py)::

      from mmspectral.registry import FEATURE_EXTRACTORS
      from mmspectral.evaluation.generative import BaseFeatureExtractor

      @FEATURE_EXTRACTORS.register_module()
      class MyExtractor(BaseFeatureExtractor):
          def __init__(self, device='cpu'):
              super().__init__(device)
              self.net = ...  # frozen, eval mode, on self.device
          def forward_features(self, images):  # (B, 3, H, W) float in [0, 1] on self.device
              return dict(pool=self.net(images))

  then ``tools/eval_fid.py ... --extractor MyExtractor``.
"""
import hashlib
import os.path as osp
from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.utils import ProgressBar

from mmspectral.fileio import load_state_dict_checked, read_state_dict
from mmspectral.registry import FEATURE_EXTRACTORS, MODELS
from mmspectral.utils import build_component
from .inception import FIDInceptionV3

__all__ = ['BaseFeatureExtractor', 'InceptionV3FID', 'TorchModuleExtractor', 'build_feature_extractor',
           'images_to_unit_tensor']

ImageBatch = Union[np.ndarray, torch.Tensor]


def images_to_unit_tensor(images: ImageBatch, device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
    """uint8 (N, H, W, 3) numpy, or (N, 3, H, W) tensor (uint8, or float in [0, 1]) -> (N, 3, H, W) float32
    in [0, 1] on ``device``."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f'numpy images must be uint8 (N, H, W, 3) in [0, 255], as arr_0 of a samples '
                             f'npz; got {images.dtype} {images.shape}.')
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if hasattr(images, 'shape') else type(images).__name__
        raise ValueError(f'image tensors must be (N, 3, H, W), uint8 in [0, 255] or float in [0, 1]; got '
                         f'{shape}. numpy arrays are read as (N, H, W, 3) uint8.')
    if images.dtype == torch.uint8:
        return images.to(device).float().div_(255.0)
    if not images.is_floating_point():
        raise ValueError(f'image tensors must be uint8 or float, got {images.dtype}.')
    images = images.to(device=device, dtype=torch.float32)
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise ValueError(f'float images must lie in [0, 1]; got values in [{lo:.3g}, {hi:.3g}]. Pass uint8 '
                         'for [0, 255] images, or map [-1, 1] images with (x + 1) / 2.')
    return images


def _split(images: ImageBatch, batch_size: int) -> Iterator[ImageBatch]:
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


@contextmanager
def _full_fp32(device: torch.device) -> Iterator[None]:
    """Turn off TF32 convolutions and matmuls on CUDA for the duration: features in true fp32."""
    if device.type != 'cuda':
        yield
        return
    conv = getattr(torch.backends.cudnn, 'conv', None)
    matmul = torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, 'fp32_precision'):
        old = conv.fp32_precision, matmul.fp32_precision
        conv.fp32_precision, matmul.fp32_precision = 'ieee', 'ieee'
        try:
            yield
        finally:
            conv.fp32_precision, matmul.fp32_precision = old
    else:
        old = torch.backends.cudnn.allow_tf32, matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = old


class BaseFeatureExtractor:
    """Batching, input conversion and collection around ``forward_features``; subclasses give the network.

    Args:
        device: where the network runs, e.g. 'cpu' or 'cuda'.
    """

    def __init__(self, device: Union[str, torch.device] = 'cpu') -> None:
        self.device = torch.device(device)

    @property
    def name(self) -> str:
        """The registry key; statistics files record it so that features of different networks never mix."""
        return type(self).__name__

    def describe(self) -> Dict[str, str]:
        """Provenance for statistics and metrics files (network, weights)."""
        return dict(extractor=self.name)

    def forward_features(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """images: (B, 3, H, W) float32 in [0, 1] on ``self.device`` -> dict of (B, ...) tensors with
        ``pool``."""
        raise NotImplementedError

    @torch.no_grad()
    def extract_batches(self, batches: Iterable[ImageBatch],
                        total: Optional[int] = None) -> Dict[str, np.ndarray]:
        """Features of every image in ``batches``, concatenated in order, flattened to (N, D) float32 numpy.
        ``total``: the number of images, for a progress bar."""
        parts: Dict[str, list] = {}
        bar = ProgressBar(total) if total else None
        with _full_fp32(self.device):
            for batch in batches:
                feats = self.forward_features(images_to_unit_tensor(batch, self.device))
                if 'pool' not in feats:
                    raise KeyError(f'{self.name}.forward_features must return a "pool" entry; got '
                                   f'{sorted(feats)}.')
                for key, value in feats.items():
                    parts.setdefault(key, []).append(value.detach().float().flatten(1).cpu().numpy())
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            print(flush=True)
        if not parts:
            raise ValueError(f'{self.name}: no images to extract features from.')
        return {key: np.concatenate(values) for key, values in parts.items()}

    def extract(self, images: ImageBatch, batch_size: int = 50,
                progress: bool = False) -> Dict[str, np.ndarray]:
        """Features of ``images`` (uint8 (N, H, W, 3) numpy or (N, 3, H, W) tensor), ``batch_size`` at a
        time."""
        return self.extract_batches(_split(images, batch_size), total=len(images) if progress else None)


def _sha256_prefix(path: str, length: int = 8) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()[:length]


@FEATURE_EXTRACTORS.register_module()
class InceptionV3FID(BaseFeatureExtractor):
    """The FID Inception network (see :mod:`.inception`): ``pool`` (N, 2048), ``logits`` (N, 1008, without
    the bias, for IS), ``spatial`` (N, 2023, for sFID).

    Args:
        weights: path to ``pt_inception-2015-12-05-6726825d.pth`` (tools/eval_fid.py:
            ``--inception-weights``).
        device: where it runs.
        allow_random_init: tests only: a seeded random network when ``weights`` is None.
        seed: seed of that random network.
    """

    #: arguments that name a file, for the config checks (mmspectral/engine/component_checks.py)
    path_arguments = {'weights': 'It is pt_inception-2015-12-05-6726825d.pth (docs/evaluation.md).'}

    def __init__(self, weights: Optional[str] = None, device: Union[str, torch.device] = 'cpu',
                 allow_random_init: bool = False, seed: int = 0) -> None:
        super().__init__(device)
        self.weights = weights
        self._description: Optional[Dict[str, str]] = None
        self.net = FIDInceptionV3(weights, allow_random_init=allow_random_init, seed=seed).to(self.device)

    def describe(self) -> Dict[str, str]:
        if self._description is None:
            if self.weights is None:
                self._description = dict(extractor=self.name,
                                         weights='random (allow_random_init, tests only)')
            else:
                path = osp.expanduser(str(self.weights))
                self._description = dict(extractor=self.name, weights=osp.basename(path),
                                         weights_sha256_prefix=_sha256_prefix(path))
        return dict(self._description)

    def forward_features(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.net(images)


@FEATURE_EXTRACTORS.register_module()
class TorchModuleExtractor(BaseFeatureExtractor):
    """Any network as a feature extractor: ``outputs`` names the method that gives each feature.

    Args:
        model: an ``nn.Module`` or a config for the MODELS registry. Put in eval mode and frozen.
        outputs: feature name -> method of ``model`` (``'forward'`` for calling it). Needs ``pool``; add
            ``logits`` for IS and ``spatial`` for sFID. Outputs are flattened to (B, D).
        checkpoint: optional state-dict file, loaded strictly with ``weights_only=True``; a ``state_dict``
            entry is unwrapped.
        input_size: resize images to this square size (bilinear) first; None keeps their size.
        mean, std: per-channel normalisation of the [0, 1] images; None leaves them in [0, 1].
        device: where it runs.
    """

    def __init__(self, model: Union[dict, nn.Module], outputs: Optional[Mapping[str, str]] = None,
                 checkpoint: Optional[str] = None, input_size: Optional[int] = None,
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 device: Union[str, torch.device] = 'cpu') -> None:
        super().__init__(device)
        self.model = build_component(model, MODELS, expected_type=nn.Module)
        self.outputs = dict(outputs or dict(pool='forward'))
        if 'pool' not in self.outputs:
            raise ValueError(f'TorchModuleExtractor: outputs must name the method giving "pool" features '
                             f'(FID, precision/recall); got {self.outputs}.')
        for key, method in self.outputs.items():
            if method != 'forward' and not callable(getattr(self.model, method, None)):
                raise ValueError(f'TorchModuleExtractor: {type(self.model).__name__} has no method '
                                 f'{method!r} (asked for the {key!r} features).')
        if checkpoint is not None:
            self._load(checkpoint)
        self.model.to(self.device).eval().requires_grad_(False)
        self.input_size = input_size
        self.mean = None if mean is None else torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std, device=self.device).view(1, -1, 1, 1)

    @property
    def name(self) -> str:
        return f'{type(self).__name__}({type(self.model).__name__})'

    def _load(self, checkpoint: str) -> None:
        load_state_dict_checked(self.model, read_state_dict(checkpoint), checkpoint,
                                f'TorchModuleExtractor({type(self.model).__name__})',
                                'Point checkpoint at weights of the model the extractor wraps.')

    def forward_features(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.input_size is not None:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode='bilinear',
                                   align_corners=False)
        if self.mean is not None:
            images = images - self.mean
        if self.std is not None:
            images = images / self.std
        return {key: (self.model(images) if method == 'forward' else getattr(self.model, method)(images))
                for key, method in self.outputs.items()}


def build_feature_extractor(cfg: Union[dict, BaseFeatureExtractor],
                            default_args: Optional[dict] = None) -> BaseFeatureExtractor:
    """Build an extractor from a FEATURE_EXTRACTORS config (``dict(type='InceptionV3FID', weights=...)``),
    or pass an already built one through."""
    return build_component(cfg, FEATURE_EXTRACTORS, default_args=default_args,
                           expected_type=BaseFeatureExtractor)
