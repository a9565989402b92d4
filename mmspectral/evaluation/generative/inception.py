"""The Inception-v3 network that FID, sFID, IS and precision/recall are measured with.

The field's numbers come from the TensorFlow graph of the Inception network released on 2015-12-05. Its
PyTorch port is the file ``pt_inception-2015-12-05-6726825d.pth``: a state dict with torchvision's
``Inception3`` key names (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``, ...), no
``AuxLogits`` and an ``fc`` with 1008 classes. The network is torchvision's ``inception_v3(weights=None,
aux_logits=False, init_weights=False, num_classes=1008)`` with the blocks whose TensorFlow behaviour differs
replaced:

* the average-pool branches of Mixed_5b-d (InceptionA), Mixed_6b-e (InceptionC) and Mixed_7b (InceptionE)
  leave the zero padding out of the average (``count_include_pad=False``), as TensorFlow does;
* Mixed_7c, the last InceptionE, max-pools in its pool branch (a quirk of that graph).

Images are resized to 299 x 299 and mapped to [-1, 1] as the TensorFlow graph of the ADM evaluator does
(``input_mapping='tf1'``, the default): TF1's bilinear resize (``align_corners=False`` without half-pixel
centres: output pixel i samples input position ``i * in / out``; :func:`resize_bilinear_tf1`) of the [0, 255]
values, then ``(x - 128) / 128``. ``input_mapping='torch'`` keeps torch's bilinear resize (half-pixel
centres) and ``2x - 1``, the mapping of earlier mmspectral versions and of pytorch-fid. The outputs are

* ``pool``: (B, 2048) the global average pool (TF ``pool_3``), FID's features and precision/recall's;
* ``logits``: (B, 1008) ``pool @ fc.weight.T`` *without* the bias, as the ADM evaluator builds its softmax
  from the graph's ``softmax/logits/MatMul`` weight; IS is the softmax over all 1008 classes;
* ``spatial``: (B, 2023) the first 7 channels of Mixed_6d's 1x1 branch (TF ``mixed_6/conv``), a (17, 17, 7)
  map flattened in TensorFlow's (H, W, C) order, sFID's features.

Numbers from this port still differ slightly from the TensorFlow graph's (float arithmetic and the order of
operations differ), so FID against statistics the TF graph computed (ADM's reference ``mu``/``sigma``) is
close to, not exactly, ADM's FID (docs/evaluation.md). Compute both sides with the same
network to compare runs; quote the evaluator next to every number.
"""
import logging
import os.path as osp
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from torchvision.models import inception_v3
from torchvision.models.inception import (BasicConv2d, InceptionA, InceptionAux, InceptionB, InceptionC,
                                          InceptionD, InceptionE)

from mmspectral.fileio import load_state_dict_checked, read_state_dict

__all__ = ['FIDInceptionV3', 'MissingFeatureWeightsError', 'FID_WEIGHTS_FILE', 'load_fid_inception_weights']

FID_WEIGHTS_FILE = 'pt_inception-2015-12-05-6726825d.pth'
FID_INPUT_SIZE = 299
FID_NUM_CLASSES = 1008
SPATIAL_CHANNELS = 7  # ADM keeps the first 7 of mixed_6/conv's 192 channels: 17 * 17 * 7 = 2023 features


class MissingFeatureWeightsError(FileNotFoundError):
    """A feature extractor needs a weights file that was not given or does not exist."""


def missing_weights_message(owner: str, path: Optional[str], file_name: str, config_key: str,
                            flag: str) -> str:
    what = 'no path was given' if path is None else f'{path!r} does not exist'
    return (f'{owner} needs the weights file {file_name!r}, but {what}. mmspectral never downloads weights: '
            f'fetch the file on a machine with network access, put it anywhere (e.g. '
            f'checkpoints/{file_name}) and pass {flag} /path/to/{file_name} to tools/eval_fid.py, or set '
            f"{config_key}='/path/to/{file_name}' in the extractor config, e.g. dict(type={owner!r}, "
            f'{config_key}=...). Tests may pass allow_random_init=True instead; a random network gives '
            'meaningless numbers.')


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that, like TensorFlow's, averages over the valid (unpadded) pixels only."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(InceptionA):
    """InceptionA with TensorFlow's average pool (padding left out of the mean)."""

    def _forward(self, x: torch.Tensor) -> list:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(_tf_avg_pool(x))]


class FIDInceptionC(InceptionC):
    """InceptionC with TensorFlow's average pool."""

    def _forward(self, x: torch.Tensor) -> list:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            branch7x7dbl = conv(branch7x7dbl)
        return [self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(_tf_avg_pool(x))]


class FIDInceptionE(InceptionE):
    """InceptionE with TensorFlow's average pool (Mixed_7b), or a max pool (``max_pool=True``, Mixed_7c)."""

    def __init__(self, in_channels: int, max_pool: bool = False) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def _forward(self, x: torch.Tensor) -> list:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _tf_avg_pool(x)
        return [self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pooled)]


def _build_torchvision_inception() -> nn.Module:
    """torchvision's Inception3 with the FID blocks; parameters in PyTorch's default initialisation."""
    blocks = [BasicConv2d, FIDInceptionA, InceptionB, FIDInceptionC, InceptionD, FIDInceptionE, InceptionAux]
    net = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=FID_NUM_CLASSES,
                       inception_blocks=blocks)
    net.Mixed_7c = FIDInceptionE(2048, max_pool=True)
    return net


def load_fid_inception_weights(net: nn.Module, path: str, owner: str = 'InceptionV3FID') -> None:
    """Load ``path`` (``torch.load(weights_only=True)``) into ``net`` with every key and shape checked.

    BatchNorm's ``num_batches_tracked`` buffers may be absent from an old file (PyTorch fills them in; they do
    not affect evaluation); any other missing or unexpected key, or a shape mismatch, raises
    :class:`CheckpointLoadError` listing them.
    """
    load_state_dict_checked(
        net, read_state_dict(path, unwrap=False), path, f'{owner} (the FID Inception network)',
        f'Expected an unmodified {FID_WEIGHTS_FILE!r} (torchvision Inception3 key names, no AuxLogits, fc '
        f"with {FID_NUM_CLASSES} classes); torchvision's own ImageNet Inception weights are a different "
        'network and do not give comparable FID.', ignore_missing=('*.num_batches_tracked', ))


def _tf1_weights(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) matrix of TF1's bilinear resize along one axis (align_corners=False, no half-pixel
    centres): output i reads input position ``i * n_in / n_out``, clamped at the last pixel."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo.double()
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    w[torch.arange(n_out), lo] += 1 - frac
    w[torch.arange(n_out), hi] += frac
    return w


def resize_bilinear_tf1(images: torch.Tensor, size: int) -> torch.Tensor:
    """TF1's ``tf.image.resize_bilinear(align_corners=False)`` (the resize in the ADM evaluator's graph):
    (B, C, H, W) -> (B, C, size, size), as two matrix products in float64, returned in the input's dtype."""
    h, w = images.shape[-2:]
    wh = _tf1_weights(h, size).to(images.device)
    ww = _tf1_weights(w, size).to(images.device)
    out = torch.einsum('oh,bchw,pw->bcop', wh, images.double(), ww)
    return out.to(images.dtype)


class FIDInceptionV3(nn.Module):
    """The FID Inception network, frozen and in eval mode; ``forward`` gives pool / logits / spatial features.

    Args:
        weights: path to ``pt_inception-2015-12-05-6726825d.pth``. Required unless ``allow_random_init``.
        allow_random_init: tests only: with ``weights=None``, build a randomly initialised network (He-normal
            convolutions, seeded by ``seed``) whose features are O(1) but meaningless.
        seed: the seed of that random initialisation.
        input_mapping: 'tf1' (the ADM graph's resize and scaling, default) or 'torch' (torch's bilinear
            resize and ``2x - 1``).
    """

    def __init__(self, weights: Optional[str] = None, allow_random_init: bool = False, seed: int = 0,
                 input_mapping: str = 'tf1') -> None:
        super().__init__()
        if input_mapping not in ('tf1', 'torch'):
            raise ValueError(f"input_mapping must be 'tf1' or 'torch', got {input_mapping!r}.")
        self.input_mapping = input_mapping
        if weights is None and allow_random_init:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.net = _build_torchvision_inception()
                for m in self.net.modules():
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
            print_log('InceptionV3FID: randomly initialised (allow_random_init=True). Its FID, IS, precision '
                      'and recall mean nothing; use this only in tests.', logger='current',
                      level=logging.WARNING)
        else:
            if weights is None or not osp.isfile(osp.expanduser(str(weights))):
                raise MissingFeatureWeightsError(missing_weights_message(
                    'InceptionV3FID', weights, FID_WEIGHTS_FILE, 'weights', '--inception-weights'))
            self.net = _build_torchvision_inception()
            load_fid_inception_weights(self.net, osp.expanduser(str(weights)))
        self.net.eval()
        self.net.requires_grad_(False)

    def train(self, mode: bool = True) -> 'FIDInceptionV3':
        return super().train(False)  # BatchNorm statistics and dropout stay frozen

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """images: (B, 3, H, W) float in [0, 1], any size. Returns pool (B, 2048), logits (B, 1008), spatial
        (B, 2023)."""
        net = self.net
        if self.input_mapping == 'tf1':
            x = (resize_bilinear_tf1(images.float() * 255.0, FID_INPUT_SIZE) - 128.0) / 128.0
        else:
            x = F.interpolate(images, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode='bilinear',
                              align_corners=False)
            x = 2.0 * x - 1.0  # (B, 3, 299, 299) in [-1, 1]
        for layer in (net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1,
                      net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, net.maxpool2, net.Mixed_5b, net.Mixed_5c,
                      net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c):
            x = layer(x)
        # TF's mixed_6/conv is Mixed_6d's 1x1 branch (conv, BN, ReLU); run it again here rather than hook it.
        spatial = net.Mixed_6d.branch1x1(x)[:, :SPATIAL_CHANNELS]  # (B, 7, 17, 17)
        spatial = spatial.permute(0, 2, 3, 1).flatten(1)  # (B, 2023) in TF's (H, W, C) order
        for layer in (net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c):
            x = layer(x)
        pool = net.avgpool(x).flatten(1)  # (B, 2048)
        logits = pool @ net.fc.weight.t()  # (B, 1008), no bias: ADM's softmax input
        return dict(pool=pool, logits=logits, spatial=spatial)
