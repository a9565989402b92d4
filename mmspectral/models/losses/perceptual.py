"""Perceptual losses on frozen, pretrained networks: TiTok's ConvNeXt-S logit MSE and LPIPS (VGG16, v0.1).

Both networks are built with torchvision's ``weights=None`` and filled from local files the user names in the
config: nothing is downloaded. Without a file they refuse to build, unless ``allow_random_init=True`` (tests
only). The networks are frozen (``requires_grad=False``) and stay in eval mode whatever ``train()`` a parent
calls, so that a training run never updates their weights or BatchNorm/Dropout state. Gradients flow to
``pred`` only.

Their weights are ordinary parameters, so they are in the parent's ``state_dict`` (and checkpoints).
"""
import logging
import os.path as osp
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

from mmspectral.fileio import load_state_dict_checked, read_state_dict
from mmspectral.registry import MODELS
from mmspectral.utils.value_range import check_value_range, to_unit
from ..utils import keep_out_of_checkpoints

__all__ = ['ConvNeXtPerceptualLoss', 'LPIPSLoss', 'MissingWeightsError']

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# LPIPS v0.1 ScalingLayer: maps [-1, 1] inputs to roughly ImageNet-normalised ones.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# Indices in torchvision's vgg16().features of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
VGG16_TAPS = (3, 8, 15, 22, 29)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)

_CONVNEXT_FILE = 'convnext_small-0c510722.pth'
_CONVNEXT_SOURCE = ("torchvision's ConvNeXt_Small_Weights.IMAGENET1K_V1, "
                    'https://download.pytorch.org/models/convnext_small-0c510722.pth')
_VGG_FILE = 'vgg16-397923af.pth'
_VGG_SOURCE = ("torchvision's VGG16_Weights.IMAGENET1K_V1, "
               'https://download.pytorch.org/models/vgg16-397923af.pth')
_LPIPS_FILE = 'vgg.pth'
_LPIPS_SOURCE = ("the lpips package's lpips/weights/v0.1/vgg.pth (pip install lpips, or "
                 'github.com/richzhang/PerceptualSimilarity)')


class MissingWeightsError(FileNotFoundError):
    """A frozen loss network needs a weights file that was not given or does not exist."""


def _weights_error(owner: str, path: Optional[str], file_name: str, source: str, config_key: str) -> str:
    what = 'no path was given' if path is None else f'{path!r} does not exist'
    return (f'{owner} needs the pretrained weights file {file_name!r} ({source}), but {what}. mmspectral '
            'never downloads weights: download the file yourself and set '
            f'{config_key}=\'/path/to/{file_name}\' in the loss config, e.g. dict(type={owner!r}, '
            f'{config_key}=...). Tests may pass allow_random_init=True instead; a randomly initialised '
            'perceptual network is useless for training.')


def _resolve_path(owner: str, path: Optional[str], allow_random_init: bool, file_name: str, source: str,
                  config_key: str) -> Optional[str]:
    """The local path to load, or None for a random network; raise when neither is allowed."""
    if path is None and allow_random_init:
        return None
    if path is None or not osp.isfile(osp.expanduser(str(path))):
        raise MissingWeightsError(_weights_error(owner, path, file_name, source, config_key))
    return osp.expanduser(str(path))


def _unmodified(file_name: str) -> str:
    return f'Expected an unmodified {file_name!r}; re-download it if it was changed or cut short.'


def _warn_random(owner: str, parts: str) -> None:
    print_log(f'{owner}: {parts} randomly initialised (allow_random_init=True). Its loss values mean '
              'nothing; use this only in tests.', logger='current', level=logging.WARNING)


def _check_reduction(owner: str, reduction: str) -> str:
    if reduction not in ('mean', 'none'):
        raise ValueError(f"{owner}: reduction must be 'mean' or 'none', got {reduction!r}.")
    return reduction


class _FrozenNetLoss(nn.Module):
    """A loss around a frozen network: no parameter trains, and the module never leaves eval mode."""

    def _freeze(self) -> None:
        for param in self.parameters():
            param.requires_grad_(False)
        self.train(False)
        keep_out_of_checkpoints(self)  # the weights come from their own file

    def train(self, mode: bool = True) -> '_FrozenNetLoss':
        # Ignore ``mode``: a parent's .train() must not switch on Dropout or stochastic depth in the
        # frozen net.
        return super().train(False)


@MODELS.register_module()
class ConvNeXtPerceptualLoss(_FrozenNetLoss):
    """TiTok's perceptual loss: MSE between the ImageNet logits of a frozen ConvNeXt-S on the two images.

    Both images are mapped from ``value_range`` to [0, 1], resized to ``input_size`` (bilinear, antialiased),
    normalised with the ImageNet mean and std and classified by torchvision's ``convnext_small``; the loss is
    the mean squared difference of the two 1000-d logit vectors. The target branch runs without gradients.

    Args:
        weights_path: local copy of torchvision's ``convnext_small-0c510722.pth`` (a plain state dict).
        value_range: (low, high) of the input images.
        input_size: side the images are resized to (224, as the network was trained).
        reduction: 'mean' (a scalar over batch and logits) or 'none' (``(B,)``, mean over logits).
        allow_random_init: without ``weights_path``, build a randomly initialised network instead of raising.
            For tests only.
    """

    #: arguments that name a file, for the config checks (mmspectral/engine/component_checks.py)
    path_arguments = {'weights_path': "It is torchvision's convnext_small-0c510722.pth (docs/faq.md)."}

    def __init__(self, weights_path: Optional[str] = None, value_range: Sequence[float] = (0.0, 1.0),
                 input_size: int = 224, reduction: str = 'mean', allow_random_init: bool = False) -> None:
        super().__init__()
        from torchvision.models import convnext_small
        owner = type(self).__name__
        self.value_range = check_value_range(value_range, owner)
        self.input_size = int(input_size)
        self.reduction = _check_reduction(owner, reduction)
        path = _resolve_path(owner, weights_path, allow_random_init, _CONVNEXT_FILE, _CONVNEXT_SOURCE,
                             'weights_path')
        self.net = convnext_small(weights=None)
        if path is None:
            _warn_random(owner, 'the ConvNeXt-S network is')
        else:
            load_state_dict_checked(self.net, read_state_dict(path, unwrap=False), path,
                                    f'{owner} (ConvNeXt-S)', _unmodified(_CONVNEXT_FILE))
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._freeze()

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = to_unit(x, self.value_range)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode='bilinear',
                              align_corners=False, antialias=True)
        return self.net((x - self.mean) / self.std)  # (B, 1000)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: ``pred``, ``target``: ``(B, 3, H, W)`` in ``value_range``. Returns a scalar (or ``(B,)``)."""
        with torch.no_grad():
            target_logits = self._logits(target)
        sq = (self._logits(pred) - target_logits).pow(2)  # (B, 1000)
        return sq.mean() if self.reduction == 'mean' else sq.mean(dim=1)


def _vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` up to relu5_3 (indices 0..29, so its state-dict names are kept)."""
    from torchvision.models.vgg import cfgs, make_layers
    return make_layers(cfgs['D'], batch_norm=False)[:VGG16_TAPS[-1] + 1]


@MODELS.register_module()
class LPIPSLoss(_FrozenNetLoss):
    """LPIPS v0.1 with a VGG16 backbone (Zhang et al. 2018), for training: frozen, differentiable in ``pred``.

    Per layer l in (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3): unit-normalise both feature maps over
    channels, square their difference, weight the channels with the learned non-negative 1x1 head, average
    over space; sum the five layers. Inputs are first mapped to [-1, 1] and then through LPIPS's ScalingLayer.

    Args:
        vgg_weights_path: local copy of torchvision's ``vgg16-397923af.pth``; only its ``features.*`` tensors
            are used (``classifier.*`` is ignored).
        lpips_weights_path: local copy of the lpips package's ``weights/v0.1/vgg.pth`` (keys
            ``lin{0..4}.model.1.weight``, each ``(1, C, 1, 1)``).
        value_range: (low, high) of the input images; (0, 1) by default, as :class:`ConvNeXtPerceptualLoss`.
        reduction: 'mean' (a scalar over the batch) or 'none' (``(B,)``).
        allow_random_init: build the networks whose path is None with random weights (the heads non-negative,
            as the trained ones are) instead of raising. For tests only.
    """

    #: arguments that name a file, for the config checks (mmspectral/engine/component_checks.py)
    path_arguments = {'vgg_weights_path': "It is torchvision's vgg16-397923af.pth (docs/faq.md).",
                      'lpips_weights_path': "It is the lpips package's weights/v0.1/vgg.pth (docs/faq.md)."}

    def __init__(self, vgg_weights_path: Optional[str] = None, lpips_weights_path: Optional[str] = None,
                 value_range: Sequence[float] = (0.0, 1.0), reduction: str = 'mean',
                 allow_random_init: bool = False) -> None:
        super().__init__()
        owner = type(self).__name__
        self.value_range = check_value_range(value_range, owner)
        self.reduction = _check_reduction(owner, reduction)
        vgg_path = _resolve_path(owner, vgg_weights_path, allow_random_init, _VGG_FILE, _VGG_SOURCE,
                                 'vgg_weights_path')
        lpips_path = _resolve_path(owner, lpips_weights_path, allow_random_init, _LPIPS_FILE, _LPIPS_SOURCE,
                                   'lpips_weights_path')
        self.vgg = _vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in LPIPS_CHANNELS)
        random_parts: List[str] = []
        if vgg_path is None:
            random_parts.append('the VGG16 features')
        else:
            # torchvision's file also holds the classifier, which LPIPS does not use.
            targets = {f'features.{k}': v for k, v in self.vgg.state_dict().items()}
            load_state_dict_checked(targets, read_state_dict(vgg_path, unwrap=False), vgg_path,
                                    f'{owner} (VGG16)', _unmodified(_VGG_FILE),
                                    ignore_unexpected=('classifier.*', ))
        if lpips_path is None:
            random_parts.append('the LPIPS heads')
            with torch.no_grad():
                for lin in self.lins:
                    lin.weight.abs_()
        else:
            # lpips names the head of layer k 'lin{k}.model.1' (its model.0 is a Dropout).
            targets = {f'lin{k}.model.1.weight': lin.weight for k, lin in enumerate(self.lins)}
            load_state_dict_checked(targets, read_state_dict(lpips_path, unwrap=False), lpips_path,
                                    f'{owner} (LPIPS heads)', _unmodified(_LPIPS_FILE))
        if random_parts:
            _warn_random(owner, ' and '.join(random_parts) + (' are' if len(random_parts) > 1 else ' is'))
        self.register_buffer('shift', torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('scale', torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self._freeze()

    def _features(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = 2.0 * to_unit(x, self.value_range) - 1.0
        x = (x - self.shift) / self.scale
        feats = []
        for index, layer in enumerate(self.vgg):
            x = layer(x)
            if index in VGG16_TAPS:
                # Unit length over channels, x / (sqrt(sum x^2) + 1e-10) as LPIPS. vector_norm rather than
                # sqrt(sum): its gradient at an all-zero feature vector is 0, where sqrt's is NaN.
                norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
                feats.append(x / (norm + 1e-10))  # (B, C_l, H_l, W_l)
        return feats

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: ``pred``, ``target``: ``(B, 3, H, W)`` in ``value_range``, H and W >= 16.

        Returns the LPIPS distance: a scalar (mean over the batch) or ``(B,)``.
        """
        with torch.no_grad():
            target_feats = self._features(target)
        dist = pred.new_zeros(pred.shape[0])
        for lin, fp, ft in zip(self.lins, self._features(pred), target_feats):
            dist = dist + lin((fp - ft).pow(2)).mean(dim=(1, 2, 3))
        return dist.mean() if self.reduction == 'mean' else dist
