"""Batched inference with a progress bar and an output folder, as mmpretrain's and mmagic's inferencers give.

>>> inferencer = SpectralInferencer(generator_folder, batch_size=2, show_progress=False)
>>> inferencer.generate(['disk', 'ring', 'plus'], seed=0).shape   # uint8 (B, H, W, 3)
(3, 64, 64, 3)

Batch j is drawn with ``seed + j``: the same seed and batch size give the same images.
"""
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .images import from_batch
from .inference import generate, get_model, reconstruct, super_resolve, variations

__all__ = ['SpectralInferencer']


class SpectralInferencer:
    """``generate``, ``reconstruct``, ``variations`` and ``super_resolve`` over many inputs, in batches.

    Args:
        model: a loaded model (``init_generator`` / ``init_tokenizer``), or what :func:`get_model` takes (a
            ``list_models`` name, a path, a hub id).
        batch_size: inputs per batch.
        show_progress: a progress bar on the console.
        **kwargs: for :func:`get_model` (``checkpoint``, ``device``, ...) when ``model`` is a name.

    Every method returns uint8 arrays (H, W, 3) and, with ``out_dir``, also writes them there as PNG files
    (``00000_disk.png``, ``00000_k4.png``, ``00000_v1.png``, ``00000_x2.png``). Image inputs may be what the
    inference API takes, or paths of image files.
    """

    def __init__(self, model: Any, batch_size: int = 16, show_progress: bool = True, **kwargs) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f'SpectralInferencer: batch_size must be an integer >= 1, got {batch_size!r}.')
        self.model = get_model(model, **kwargs) if isinstance(model, (str, os.PathLike)) else model
        self.batch_size = batch_size
        self.show_progress = show_progress

    # ------------------------------------------------------------------ helpers
    def _batches(self, count: int):
        from mmengine.utils import ProgressBar
        bar = ProgressBar(count) if self.show_progress and count else None
        for start in range(0, count, self.batch_size):
            stop = min(start + self.batch_size, count)
            yield start // self.batch_size, start, stop
            if bar is not None:
                for _ in range(stop - start):
                    bar.update()

    @staticmethod
    def _images(images: Any) -> List[Any]:
        """A list of single images; paths are read (corrupt files are refused with the file's name)."""
        if isinstance(images, (str, os.PathLike)):
            images = [images]
        if isinstance(images, np.ndarray) and images.ndim == 4:
            return list(images)
        if hasattr(images, 'dim') and images.dim() == 4:
            return list(images)
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        out = []
        for item in items:
            if isinstance(item, (str, os.PathLike)):
                from mmspectral.datasets.transforms import decode_image
                with open(item, 'rb') as f:
                    item = decode_image(f.read(), str(item))
            out.append(item)
        return out

    @staticmethod
    def _classes(classes: Union[int, str, Sequence], count: int) -> list:
        items = [classes] if isinstance(classes, (int, str)) else list(classes)
        if len(items) == 1 and count > 1:
            items = items * count
        if len(items) != count:
            raise ValueError(f'Pass one class, or one per image: {len(items)} classes for {count} images.')
        return items

    def _save(self, out_dir: Optional[str], arrays: np.ndarray, names: List[str]) -> None:
        if out_dir is None:
            return
        import cv2

        from mmspectral.fileio import atomic_write
        os.makedirs(out_dir, exist_ok=True)
        for array, name in zip(arrays, names):
            ok, png = cv2.imencode('.png', cv2.cvtColor(array, cv2.COLOR_RGB2BGR))
            with atomic_write(osp.join(out_dir, name), 'wb') as f:
                f.write(png.tobytes())

    def _name(self, label) -> str:
        names = getattr(self.model, 'class_names', ()) or ()
        if isinstance(label, str):
            return label
        return names[label] if 0 <= label < len(names) else f'class{label}'

    # ------------------------------------------------------------------ the four tasks
    def generate(self, classes: Sequence[Union[int, str]], seed: int = 0, num_tokens: Optional[int] = None,
                 out_dir: Optional[str] = None, **sampling) -> np.ndarray:
        """One sample per entry of ``classes`` (indices or names), batch j with ``seed + j``."""
        classes = list(classes) if not isinstance(classes, (int, str)) else [classes]
        parts = [generate(self.model, classes[a:b], num_tokens=num_tokens, seed=seed + j, output='numpy',
                          **sampling) for j, a, b in self._batches(len(classes))]
        arrays = np.concatenate(parts)
        self._save(out_dir, arrays, [f'{i:05d}_{self._name(c)}.png' for i, c in enumerate(classes)])
        return arrays

    __call__ = generate

    def reconstruct(self, images: Any, k: Union[None, int, Sequence[int]] = None,
                    out_dir: Optional[str] = None) -> Union[np.ndarray, Dict[int, np.ndarray]]:
        """The tokenizer's reconstructions from the first ``k`` tokens (one length, or a list: a dict)."""
        items = self._images(images)
        lengths = [k] if k is None or isinstance(k, int) else list(k)
        out = {n: [] for n in lengths}
        for _, a, b in self._batches(len(items)):
            for n in lengths:
                out[n].append(from_batch(reconstruct(self.model, items[a:b], k=n, output='tensor'), 'numpy'))
        out = {n: np.concatenate(parts) for n, parts in out.items()}
        for n, arrays in out.items():
            tag = 'all' if n is None else f'k{n}'
            self._save(out_dir, arrays, [f'{i:05d}_{tag}.png' for i in range(len(arrays))])
        return out[lengths[0]] if k is None or isinstance(k, int) else out

    def variations(self, images: Any, classes, keep: int, num: int = 4, seed: int = 0,
                   out_dir: Optional[str] = None, **sampling) -> np.ndarray:
        """``num`` spectral variations of each image (its first ``keep`` tokens kept): (B, num, H, W, 3)."""
        items = self._images(images)
        labels = self._classes(classes, len(items))
        parts = []
        for j, a, b in self._batches(len(items)):
            found = variations(self.model, items[a:b], labels[a:b], keep=keep, num=num, seed=seed + j,
                               output='tensor', **sampling)
            parts += [from_batch(v, 'numpy') for v in found]
        arrays = np.stack(parts)
        self._save(out_dir, arrays.reshape(-1, *arrays.shape[2:]),
                   [f'{i:05d}_v{v}.png' for i in range(len(arrays)) for v in range(num)])
        return arrays

    def super_resolve(self, images: Any, classes, mode: str = 'stride', seed: int = 0,
                      out_dir: Optional[str] = None, **sampling) -> np.ndarray:
        """Twice the resolution (``mode`` 'stride', 'patch' or 'bicubic'): (B, 2H, 2W, 3)."""
        items = self._images(images)
        labels = self._classes(classes, len(items))
        parts = [from_batch(super_resolve(self.model, items[a:b], labels[a:b], mode=mode, seed=seed + j,
                                          output='tensor', **sampling), 'numpy')
                 for j, a, b in self._batches(len(items))]
        arrays = np.concatenate(parts)
        self._save(out_dir, arrays, [f'{i:05d}_x2.png' for i in range(len(arrays))])
        return arrays
