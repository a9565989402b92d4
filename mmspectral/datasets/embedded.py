"""EmbeddedShapes: a class-conditional image dataset that needs no download.

Two class sets, each of ten classes a person tells apart at a glance, drawn anti-aliased in a saturated colour
over a muted background whose amplitude spectrum falls as ``1 / f^alpha`` (alpha in [0.9, 1.5]), like natural
photographs, so that coarse-to-fine spectral ordering matters: the low frequencies carry the layout and the
object's colour blob, the high ones its edges and textures.

- ``'fine'`` (disk, square, triangle, ring, plus, cross, star, stripes, checker, dots): the classes differ in
  outline and texture, which needs the DCT block of about w = 10 at 64 px (a classifier trained on real images
  recognises 86% of those low-pass images, 50% at w = 8).
- ``'coarse'`` (disk, ring, hbar, vbar, hpair, vpair, plus, cross, triangle, quad): bold shapes, bars and
  pairs of disks that differ in layout at the scale of a quarter of the image, recognisable from w = 5 at
  64 px (86%, 96% at w = 6). The quick start uses it: it is what a tiny tokenizer learns in minutes on a CPU
  (docs/design.md).

Both sets are closed under horizontal flips (a flipped image is still of its class), so flip augmentation is
safe. Every image is a pure function of ``(seed, index, class set)``: any size, reproducible everywhere.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.dataset import BaseDataset

from mmspectral.registry import DATASETS

CLASSES = ('disk', 'square', 'triangle', 'ring', 'plus', 'cross', 'star', 'stripes', 'checker', 'dots')
COARSE_CLASSES = ('disk', 'ring', 'hbar', 'vbar', 'hpair', 'vpair', 'plus', 'cross', 'triangle', 'quad')
CLASS_SETS = {'fine': CLASSES, 'coarse': COARSE_CLASSES}
_SUPERSAMPLE = 4


def class_names(class_set: str = 'fine') -> Tuple[str, ...]:
    """The ten class names of ``class_set`` ('fine' or 'coarse')."""
    if class_set not in CLASS_SETS:
        raise ValueError(f"EmbeddedShapes class_set must be one of {sorted(CLASS_SETS)}, got {class_set!r}.")
    return CLASS_SETS[class_set]


def class_set_of(names: Sequence[str]) -> str:
    """The class set whose names start with ``names`` (e.g. a token file's classes); 'fine' when none does."""
    names = tuple(names)
    for key, classes in CLASS_SETS.items():
        if names and classes[:len(names)] == names:
            return key
    return 'fine'


def _pink_field(rng: np.random.Generator, size: int, alpha: float) -> np.ndarray:
    """A zero-mean, unit-std random field with amplitude spectrum ``1 / f^alpha``. (size, size) float32."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    freq = np.sqrt(fx ** 2 + fy ** 2)
    freq[0, 0] = 1.0
    amp = freq ** -alpha
    amp[0, 0] = 0.0
    spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
    field = np.fft.irfft2(spec, s=(size, size))
    return (field / (field.std() + 1e-8)).astype(np.float32)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    hsv = np.array([[[h * 179.0, s * 255.0, v * 255.0]]], dtype=np.float32).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _rotated(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, -s], [s, c]]).T


class _Canvas:
    """Filled polygons, bars and disks on a supersampled mask, relative to the object's centre."""

    def __init__(self, big: int, centre: np.ndarray) -> None:
        self.centre = centre
        self.mask = np.zeros((big, big), np.uint8)
        self.second = np.zeros((big, big), np.uint8)

    def poly(self, points: np.ndarray) -> None:
        cv2.fillPoly(self.mask, [np.round(points + self.centre).astype(np.int32)], 255, lineType=cv2.LINE_8)

    def bar(self, length: float, width: float, angle: float) -> None:
        pts = np.array([[-length, -width], [length, -width], [length, width], [-length, width]]) / 2
        self.poly(_rotated(pts, angle))

    def disk(self, radius: float, offset=(0.0, 0.0), value: int = 255) -> None:
        x, y = (int(int(round(c)) + o) for c, o in zip(self.centre, offset))
        cv2.circle(self.mask, (x, y), int(radius), value, -1)


def _unit(angles: np.ndarray) -> np.ndarray:
    """Unit vectors (n, 2) at ``angles``."""
    return np.stack([np.cos(angles), np.sin(angles)], 1)


def _draw_fine(name: str, canvas: _Canvas, rng: np.random.Generator, big: int) -> None:
    r = big * rng.uniform(0.26, 0.36)
    tilt = np.deg2rad(rng.uniform(-15, 15))
    cx, cy = (int(round(v)) for v in canvas.centre)
    if name == 'disk':
        canvas.disk(r)
    elif name == 'square':
        canvas.bar(1.7 * r, 1.7 * r, tilt)
    elif name == 'triangle':
        canvas.poly(_unit(tilt - np.pi / 2 + np.arange(3) * 2 * np.pi / 3) * r * 1.1)
    elif name == 'ring':
        canvas.disk(r)
        canvas.disk(0.55 * r, value=0)
    elif name in ('plus', 'cross'):
        base = tilt + (np.pi / 4 if name == 'cross' else 0.0)
        canvas.bar(2 * r, 0.5 * r, base)
        canvas.bar(2 * r, 0.5 * r, base + np.pi / 2)
    elif name == 'star':
        angles = rng.uniform(0, 2 * np.pi) + np.arange(10) * np.pi / 5
        canvas.poly(_unit(angles) * np.where(np.arange(10) % 2 == 0, 1.15 * r, 0.45 * r)[:, None])
    elif name == 'stripes':
        canvas.disk(r)
        yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
        theta = rng.uniform(0, np.pi)
        phase = ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) / (0.5 * r)
        canvas.second[(np.floor(phase) % 2 == 0) & (canvas.mask > 0)] = 255
    elif name == 'checker':
        canvas.bar(1.8 * r, 1.8 * r, tilt)
        yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
        u, v = _rotated(np.stack([xx - cx, yy - cy], -1).reshape(-1, 2), -tilt).T / (0.45 * r)
        cells = (np.floor(u) + np.floor(v)).reshape(big, big) % 2 == 0
        canvas.second[cells & (canvas.mask > 0)] = 255
    elif name == 'dots':
        for i in (-1, 0, 1):
            for j in (-1, 0, 1):
                canvas.disk(0.24 * r, _rotated(np.array([[i, j]], np.float64) * 0.75 * r, tilt)[0])
    else:  # pragma: no cover - CLASSES and this function are edited together
        raise ValueError(f'No drawing for class {name!r}.')


def _draw_coarse(name: str, canvas: _Canvas, rng: np.random.Generator, big: int) -> None:
    s = big * rng.uniform(0.9, 1.1)  # the object's scale, in supersampled pixels per image side
    tilt = np.deg2rad(rng.uniform(-10, 10))
    length, width = 0.8 * s, 0.22 * s
    if name == 'disk':
        canvas.disk(0.30 * s)
    elif name == 'ring':
        canvas.disk(0.40 * s)
        canvas.disk(0.20 * s, value=0)
    elif name in ('hbar', 'vbar'):
        canvas.bar(length, width, tilt + (np.pi / 2 if name == 'vbar' else 0.0))
    elif name in ('hpair', 'vpair'):
        offset = _rotated(np.array([[0.24 * s, 0.0]]), tilt + (np.pi / 2 if name == 'vpair' else 0.0))[0]
        canvas.disk(0.15 * s, offset)
        canvas.disk(0.15 * s, -offset)
    elif name in ('plus', 'cross'):
        base, scale = (tilt, 1.0) if name == 'plus' else (tilt + np.pi / 4, 1.05)
        canvas.bar(scale * length, 0.9 * width, base)
        canvas.bar(scale * length, 0.9 * width, base + np.pi / 2)
    elif name == 'triangle':
        canvas.poly(_unit(tilt - np.pi / 2 + np.arange(3) * 2 * np.pi / 3) * 0.42 * s)
    elif name == 'quad':
        corners = _rotated(np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], np.float64) * 0.22 * s, tilt)
        for offset in corners:
            canvas.disk(0.12 * s, offset)
    else:  # pragma: no cover - COARSE_CLASSES and this function are edited together
        raise ValueError(f'No drawing for class {name!r}.')


# Per class set: the drawing function and how far the object's centre may move (share of the image side).
_DRAWERS = {'fine': (_draw_fine, 0.12), 'coarse': (_draw_coarse, 0.08)}


def _shape_mask(label: int, rng: np.random.Generator, size: int, class_set: str = 'fine') -> tuple:
    """Coverage in [0, 1] of the object (size, size), and of its darker 'second colour' part."""
    big = size * _SUPERSAMPLE
    name = class_names(class_set)[label]
    draw, jitter = _DRAWERS[class_set]
    canvas = _Canvas(big, big * (0.5 + rng.uniform(-jitter, jitter, size=2)))
    draw(name, canvas, rng, big)
    shrink = dict(dsize=(size, size), interpolation=cv2.INTER_AREA)
    return (cv2.resize(canvas.mask, **shrink).astype(np.float32) / 255.0,
            cv2.resize(canvas.second, **shrink).astype(np.float32) / 255.0)


def render_shape(seed: int, index: int, label: int, image_size: int = 32,
                 class_set: str = 'fine') -> np.ndarray:
    """Draw sample ``index`` of class ``label``: RGB uint8 ``(image_size, image_size, 3)``, deterministic."""
    return render_shape_and_mask(seed, index, label, image_size, class_set)[0]


def render_shape_and_mask(seed: int, index: int, label: int, image_size: int = 32,
                          class_set: str = 'fine') -> Tuple[np.ndarray, np.ndarray]:
    """:func:`render_shape`'s image and the object's coverage in [0, 1], float32 ``(image_size, image_size)``
    (1 inside the object, fractional on its anti-aliased edge, 0 on the background)."""
    classes = class_names(class_set)
    if not 0 <= label < len(classes):
        raise ValueError(f'EmbeddedShapes has {len(classes)} classes, got label {label}.')
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(label), int(image_size)]))
    # Background: a muted colour modulated by 1/f luminance and weaker 1/f chroma fields.
    base = _hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.35), rng.uniform(0.3, 0.6))
    alpha = rng.uniform(0.9, 1.5)
    lum = _pink_field(rng, image_size, alpha)[..., None]
    chroma = np.stack([_pink_field(rng, image_size, alpha) for _ in range(3)], -1)
    background = base + 0.12 * lum + 0.03 * chroma
    # Object: a saturated colour with a little 1/f shading; 'second' parts use a darker shade of it.
    colour = _hsv_to_rgb(rng.uniform(), rng.uniform(0.65, 1.0), rng.uniform(0.8, 1.0))
    shade = 1.0 + 0.08 * _pink_field(rng, image_size, 1.5)[..., None]
    mask, second = _shape_mask(label, rng, image_size, class_set)
    obj = colour * shade * (1.0 - 0.6 * second[..., None])
    img = background * (1.0 - mask[..., None]) + obj * mask[..., None]
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mask


@DATASETS.register_module()
class EmbeddedShapesDataset(BaseDataset):
    """The embedded default dataset: ``num_samples`` procedurally drawn images, classes balanced.

    Sample ``i`` has label ``i % num_classes``; its image depends only on
    ``(seed, i, image_size, class_set)``. Use different seeds for the train and validation splits. Results
    carry ``img`` (RGB uint8), so pipelines start after loading (flip, ``PackImageInputs``).

    Args:
        num_samples: dataset length.
        image_size: side in pixels (32 and 64 are the sizes the tiny configs use; any size works).
        seed: split seed.
        num_classes: use the first ``num_classes`` of the 10 classes.
        class_set: 'fine' (outlines and textures: disk, square, ..., dots) or 'coarse' (bold layouts: disk,
            ring, bars, pairs, ...; the quick start's); see the module docstring.
        cache_images: keep every image once drawn (``num_samples * image_size^2 * 3`` bytes per data-loader
            worker; 245 MB for 20,000 images at 64 px): drawing costs about 2 ms an image, more than a tiny
            model's training step, so short CPU runs that see each image many times keep them.
        pipeline, test_mode, lazy_init, max_refetch, indices, serialize_data: as MMEngine's BaseDataset.
    """

    METAINFO = dict(classes=CLASSES)

    @staticmethod
    def output_size(args) -> Optional[int]:
        """The side of the images a config of this dataset yields (for the config checks)."""
        return args.get('image_size')

    def __init__(self, num_samples: int = 5000, image_size: int = 32, seed: int = 0, num_classes: int = 10,
                 class_set: str = 'fine', cache_images: bool = False, pipeline: Sequence = (),
                 test_mode: bool = False, lazy_init: bool = False, max_refetch: int = 1000, indices=None,
                 serialize_data: bool = True) -> None:
        classes = class_names(class_set)
        if not 1 <= num_classes <= len(classes):
            raise ValueError(f'EmbeddedShapesDataset: num_classes must lie in [1, {len(classes)}], got '
                             f'{num_classes}.')
        if num_samples < 1 or image_size < 8:
            raise ValueError(f'EmbeddedShapesDataset: need num_samples >= 1 and image_size >= 8, got '
                             f'{num_samples} and {image_size}.')
        self.num_samples = int(num_samples)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.num_classes = int(num_classes)
        self.class_set = class_set
        self._cache = {} if cache_images else None
        super().__init__(metainfo=dict(classes=classes[:num_classes]), pipeline=list(pipeline),
                         test_mode=test_mode, lazy_init=lazy_init, max_refetch=max_refetch, indices=indices,
                         serialize_data=serialize_data)

    def load_data_list(self) -> List[dict]:
        return [dict(sample_idx=i, gt_label=i % self.num_classes) for i in range(self.num_samples)]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        key = info['sample_idx']
        img = self._cache.get(key) if self._cache is not None else None
        if img is None:
            img = render_shape(self.seed, key, info['gt_label'], self.image_size, self.class_set)
            if self._cache is not None:
                self._cache[key] = img
        info['img'] = img.copy() if self._cache is not None else img  # transforms may write into it
        info['img_shape'] = info['ori_shape'] = (self.image_size, self.image_size)
        name = 'embedded-shapes' if self.class_set == 'fine' else f'embedded-shapes-{self.class_set}'
        info['img_path'] = f'{name}/seed{self.seed}/{info["sample_idx"]:06d}'
        return info

    def object_mask(self, idx: int) -> np.ndarray:
        """The object's coverage in image ``idx`` (before any transform): float32 (H, W) in [0, 1]."""
        info = super().get_data_info(idx)
        return render_shape_and_mask(self.seed, info['sample_idx'], info['gt_label'], self.image_size,
                                     self.class_set)[1]


def export_embedded_shapes(out_dir: str, num_per_class: int, image_size: int = 32, seed: int = 0,
                           num_classes: int = 10, ext: str = '.png', class_set: str = 'fine') -> List[str]:
    """Write the dataset as an ImageNet-style folder ``out_dir/<class>/<index>.png``; returns the paths."""
    classes = class_names(class_set)
    if not 1 <= num_classes <= len(classes):
        raise ValueError(f'num_classes must lie in [1, {len(classes)}], got {num_classes}.')
    paths = []
    for i in range(num_per_class * num_classes):
        label = i % num_classes
        folder = osp.join(out_dir, classes[label])
        os.makedirs(folder, exist_ok=True)
        path = osp.join(folder, f'{i:06d}{ext}')
        img = render_shape(seed, i, label, image_size, class_set)
        if not cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f'Could not write {path}.')
        paths.append(path)
    return paths
