"""A small classifier of the EmbeddedShapes classes, trained on real images: the probe that judges samples.

ImageNet generators are judged by an Inception network trained on ImageNet; the embedded dataset has no such
network to download, so mmspectral trains one in about a minute on the CPU (tools/train_probe.py). Its
accuracy on samples says whether a class-conditional generator draws the class it was asked for (its accuracy
on held-out real images is the ceiling), and its pooled features stand in for Inception features on this
dataset: ``ShapesProbe`` is the FEATURE_EXTRACTORS entry that gives them to the Frechet distance, IS and
precision / recall code (``tools/eval_fid.py --extractor ShapesProbe --extractor-options checkpoint=PATH``).
"""
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmspectral.datasets.embedded import CLASSES, class_names, render_shape, render_shape_and_mask
from mmspectral.fileio import atomic_write, load_state_dict_checked, load_torch_file
from mmspectral.registry import FEATURE_EXTRACTORS
from .functional import blockiness, psnr, region_errors
from .generative.extractors import BaseFeatureExtractor

__all__ = ['ShapesClassifier', 'ShapesProbe', 'train_shapes_classifier', 'load_or_train_shapes_classifier',
           'load_shapes_classifier', 'render_batch']


class ShapesClassifier(nn.Module):
    """Images resized to ``input_size``, four conv stages (3x3 conv, BatchNorm, ReLU, 2x2 max-pool), global
    average pooling, a linear head.

    ``input_size`` is what the probe sees: images of another size are area-resized to it first, so a probe
    with the default 32 px judges 64 px images by their 32 px versions (the DCT band below about 32 of the
    64 px grid). Judging detail, e.g. of super-resolved images, takes a probe with ``input_size`` equal to
    their size.

    Takes images in [0, 1], (B, 3, H, W); ``features`` gives the pooled (B, 4 * width) vectors. ``class_set``
    records which EmbeddedShapes classes it tells apart (it is saved beside the weights, not in them).
    """

    def __init__(self, num_classes: int = len(CLASSES), width: int = 16, input_size: int = 32,
                 class_set: str = 'fine') -> None:
        super().__init__()
        self.input_size = input_size
        self.class_set = class_set
        layers, c_in = [], 3
        for c_out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.input_size:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode='area')
        return self.body(2.0 * images - 1.0).mean((2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def render_batch(indices: Sequence[int], image_size: int, seed: int, num_classes: int = len(CLASSES),
                 class_set: str = 'fine', with_masks: bool = False):
    """EmbeddedShapes images ``indices`` (label = index % num_classes) as (B, 3, S, S) floats in [0, 1].

    Returns ``(images, labels)``, or with ``with_masks`` ``(images, labels, masks)``: the objects' coverage
    (B, S, S) in [0, 1], drawn with the images.
    """
    labels = np.asarray(indices) % num_classes
    if with_masks:
        drawn = [render_shape_and_mask(seed, int(i), int(c), image_size, class_set)
                 for i, c in zip(indices, labels)]
        images, masks = np.stack([d[0] for d in drawn]), torch.from_numpy(np.stack([d[1] for d in drawn]))
    else:
        images = np.stack([render_shape(seed, int(i), int(c), image_size, class_set)
                           for i, c in zip(indices, labels)])
    images = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    if with_masks:
        return images, torch.from_numpy(labels).long(), masks
    return images, torch.from_numpy(labels).long()


def reconstruction_fidelity(recons: torch.Tensor, images: torch.Tensor, masks: torch.Tensor,
                            patch_size: int) -> dict:
    """What a tokenizer's reconstructions keep of EmbeddedShapes images (all (B, 3, S, S) in [0, 1]; ``masks``
    (B, S, S) from ``render_batch(..., with_masks=True)``): PSNR of the whole image, of the object and of the
    background; patch seams (:func:`~mmspectral.evaluation.functional.blockiness`, next to the real images'
    value); the object's colour error (:func:`~mmspectral.evaluation.functional.region_errors`: distance
    between its mean RGB colours in the reconstruction and the image, in [0, 1] units)."""
    recons = recons.clamp(0, 1)
    inside = (masks > 0.5).float()  # the object's interior, without its anti-aliased rim
    obj = region_errors(recons, images, inside)
    background = region_errors(recons, images, (masks < 0.05).float())
    return dict(psnr=float(psnr(recons, images).mean()), psnr_object=obj['psnr'],
                psnr_background=background['psnr'], object_colour_error=obj['colour_error'],
                object_pixel_error=obj['pixel_mae'], blockiness=blockiness(recons, patch_size),
                blockiness_real_images=blockiness(images, patch_size), num_images=len(images))


def train_shapes_classifier(image_size: int = 64, num_classes: int = len(CLASSES), steps: int = 250,
                            batch_size: int = 32, seed: int = 1234, num_val: int = 500,
                            class_set: str = 'fine', input_size: int = 32) -> tuple:
    """Train a ShapesClassifier that sees ``input_size`` px on freshly drawn ``image_size`` px images (a seed
    no tokenizer config uses); CPU, under a minute at 32 px.

    Returns the model (eval mode) and its accuracy on ``num_val`` held-out real images.
    """
    with torch.enable_grad():  # also when called under no_grad
        model = _fit(num_classes, image_size, steps, batch_size, seed, class_set, input_size)
    images, labels = render_batch(range(num_val), image_size, seed + 1, num_classes, class_set)
    return model, accuracy(model, images, labels)


def _fit(num_classes: int, image_size: int, steps: int, batch_size: int, seed: int,
         class_set: str, input_size: int) -> ShapesClassifier:
    if input_size < 16:
        raise ValueError(f'A ShapesClassifier sees at least 16 px (four 2x2 poolings), got input_size='
                         f'{input_size}.')
    torch.manual_seed(seed)
    model = ShapesClassifier(num_classes, input_size=input_size, class_set=class_set)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        images, labels = render_batch(rng.integers(0, 10 ** 9, batch_size), image_size, seed, num_classes,
                                      class_set)
        flip = torch.rand(batch_size) < 0.5
        images[flip] = images[flip].flip(-1)
        loss = F.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Share of ``images`` (B, 3, H, W) in [0, 1] that ``model`` assigns to their ``labels``."""
    hits = sum(int((model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum())
               for i in range(0, len(images), batch_size))
    return hits / max(len(images), 1)


def load_shapes_classifier(path: str, image_size: Optional[int] = None,
                           class_set: Optional[str] = None) -> tuple:
    """(classifier in eval mode, its held-out accuracy, the image size it was trained at) from ``path``.

    ``image_size`` / ``class_set``: what the caller needs; a file made for another size or class set is
    refused with a message. Files written before class sets existed hold the 'fine' classes, and those
    written before ``input_size`` was saved see 32 px.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'No EmbeddedShapes probe at {path!r}: train one with '
                                f'`python tools/train_probe.py --out {path}` (about a minute on a CPU).')
    state = load_torch_file(path, map_location='cpu', trusted=False)
    if not isinstance(state, dict) or 'state_dict' not in state:
        raise ValueError(f'{path} is not a probe file written by tools/train_probe.py (no state_dict entry).')
    saved_set = str(state.get('class_set', 'fine'))
    model = ShapesClassifier(int(state['num_classes']), input_size=int(state.get('input_size', 32)),
                             class_set=saved_set)
    load_state_dict_checked(model, state['state_dict'], path, f'ShapesClassifier({saved_set!r} classes)',
                            f'Write it again with `python tools/train_probe.py --out {path}`.')
    if image_size is not None and int(state['image_size']) != image_size:
        raise ValueError(f'{path} holds a classifier for {int(state["image_size"])} px images, not '
                         f'{image_size} px; delete it or pass another path.')
    if class_set is not None and saved_set != class_set:
        raise ValueError(f'{path} holds a classifier of the {saved_set!r} EmbeddedShapes classes, not the '
                         f'{class_set!r} ones ({", ".join(class_names(class_set))}); delete it or pass '
                         'another path.')
    return model.eval(), float(state['real_accuracy']), int(state['image_size'])


def load_or_train_shapes_classifier(path: Optional[str], image_size: int = 64, class_set: str = 'fine',
                                    **kwargs) -> tuple:
    """The classifier saved at ``path`` (with its held-out accuracy), or a new one trained and saved there.
    ``kwargs`` go to :func:`train_shapes_classifier`; a saved one that sees another ``input_size`` than asked
    for is refused."""
    if path and osp.isfile(path):
        model, acc, _ = load_shapes_classifier(path, image_size, class_set)
        wanted = kwargs.get('input_size', model.input_size)
        if model.input_size != wanted:
            raise ValueError(f'{path} holds a classifier that sees {model.input_size} px, not {wanted} px; '
                             'delete it or pass another path.')
        return model, acc
    model, acc = train_shapes_classifier(image_size, class_set=class_set, **kwargs)
    if path:
        with atomic_write(path, 'wb') as f:
            torch.save(dict(state_dict=model.state_dict(), num_classes=model.head.out_features,
                            image_size=image_size, real_accuracy=acc, class_set=class_set,
                            input_size=model.input_size), f)
    return model, acc


@FEATURE_EXTRACTORS.register_module()
class ShapesProbe(BaseFeatureExtractor):
    """The EmbeddedShapes probe as a feature extractor: ``pool`` (N, 64) pooled features, ``logits`` (N, 10).

    Args:
        checkpoint: a probe saved by tools/train_probe.py (required: a missing file says how to make one).
        device: where it runs.
    """

    #: arguments that name a file, for the config checks (mmspectral/engine/component_checks.py)
    path_arguments = {'checkpoint': 'It is a probe saved by `python tools/train_probe.py --out PATH`.'}

    def __init__(self, checkpoint: Optional[str] = None, device='cpu') -> None:
        super().__init__(device)
        if checkpoint is None:
            raise FileNotFoundError('ShapesProbe needs checkpoint=PATH, a probe saved by '
                                    '`python tools/train_probe.py --out PATH`.')
        self.checkpoint = checkpoint
        model, self.real_accuracy, self.image_size = load_shapes_classifier(checkpoint)
        self.model = model.to(self.device)

    def describe(self) -> dict:
        return dict(extractor=self.name, weights=osp.basename(self.checkpoint),
                    probe_real_accuracy=f'{self.real_accuracy:.4f}')

    def forward_features(self, images: torch.Tensor) -> dict:
        feats = self.model.features(images)
        return dict(pool=feats, logits=self.model.head(feats))
