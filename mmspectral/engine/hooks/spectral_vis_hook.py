"""Coarse-to-fine reconstruction pictures after each validation, through MMEngine's visualizer."""
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import cv2
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402

from mmspectral.registry import HOOKS  # noqa: E402


def figure_to_array(fig) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a matplotlib figure."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def reconstruction_grid(images: torch.Tensor, recons: Dict[int, torch.Tensor],
                        targets: Dict[int, torch.Tensor],
                        omegas: Optional[Dict[int, int]] = None,
                        trained_on_lowpass: bool = True) -> np.ndarray:
    """For each image a row of reconstructions from k tokens and, under it, the low-pass images of w_k.

    All tensors in [0, 1]; ``images`` (B, 3, H, W), ``recons`` / ``targets``: k -> (B, 3, H, W).
    ``trained_on_lowpass=False`` (a tokenizer without spectral supervision, e.g. TiTok tokens with a
    schedule for evaluation) labels the low-pass row as not the tokenizer's target.
    """
    ks = sorted(recons)
    b = images.shape[0]
    if not omegas:  # without a schedule the "targets" are the images themselves
        lower_label = 'image'
    else:
        lower_label = 'low-pass' if trained_on_lowpass else 'low-pass\n(not its target)'
    fig, axes = plt.subplots(2 * b, len(ks) + 1, figsize=(1.25 * (len(ks) + 1), 1.35 * 2 * b), squeeze=False)
    for i in range(b):
        for j, k in enumerate(ks):
            for row, source in ((2 * i, recons), (2 * i + 1, targets)):
                ax = axes[row, j]
                ax.imshow(source[k][i].permute(1, 2, 0).float().clamp(0, 1).cpu().numpy())
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0 and row == 0:
                    ax.set_title(f'k={k}' + (f'\nw={omegas[k]}' if omegas else ''), fontsize=7)
            if j == 0:
                axes[2 * i, 0].set_ylabel('decoded', fontsize=7)
                axes[2 * i + 1, 0].set_ylabel(lower_label, fontsize=7)
        axes[2 * i, -1].imshow(images[i].permute(1, 2, 0).float().clamp(0, 1).cpu().numpy())
        axes[2 * i, -1].set_title('image' if i == 0 else '', fontsize=7)
        for row in (2 * i, 2 * i + 1):
            axes[row, -1].axis('off')
    fig.tight_layout(pad=0.2)
    array = figure_to_array(fig)
    plt.close(fig)
    return array


def psnr_curve(metrics: Dict[str, float], prefix: str = 'recon',
               trained_on_lowpass: bool = True) -> Optional[np.ndarray]:
    """PSNR against the low-pass image of w_k and against the full image, as functions of k
    (``trained_on_lowpass=False``: the low-pass curve is labelled as not the tokenizer's target)."""
    series = {}
    for name in ('psnr_lowpass', 'psnr_full'):
        points = sorted((int(key.rsplit('/k', 1)[1]), value) for key, value in metrics.items()
                        if key.startswith(f'{prefix}/{name}/k'))
        if points:
            series[name] = points
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    labels = {'psnr_lowpass': 'vs low-pass target of w_k' if trained_on_lowpass
              else 'vs low-pass of w_k (never its target)', 'psnr_full': 'vs full image'}
    for name, points in series.items():
        ks, values = zip(*points)
        ax.plot(ks, values, marker='o', label=labels[name])
    ax.set_xscale('log', base=2)
    ax.set_xlabel('prefix length k (tokens)')
    ax.set_ylabel('PSNR (dB)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    array = figure_to_array(fig)
    plt.close(fig)
    return array


@HOOKS.register_module()
class SpectralReconstructionHook(Hook):
    """After validation (and test): writes the coarse-to-fine grid and the PSNR-vs-k plot.

    The grid shows, for the first ``num_images`` validation images, the decoded prefix of k tokens for
    k = 1, 2, 4, ..., N above the low-pass target ``lowpass(image, w_k)``. Images go through the Runner's
    visualizer (local files under ``vis_data/vis_image`` and TensorBoard, as configured); with ``out_dir``
    they are also written as ``<out_dir>/reconstructions.png`` and ``<out_dir>/psnr_vs_k.png`` (latest).

    Args:
        num_images: how many validation images to show.
        prefix_lengths: the k to show (default: the model's ``eval_prefix_lengths``).
        metric_prefix: the prefix of ReconstructionMetric's keys.
        out_dir: optional folder (relative to the work dir) for the latest pictures.
    """

    # Above EMAHook (ABOVE_NORMAL), which swaps the training weights back in its own after_val_epoch: the
    # pictures then show the same (EMA) weights as the metrics.
    priority = 'HIGH'

    def __init__(self, num_images: int = 4, prefix_lengths: Optional[Sequence[int]] = None,
                 metric_prefix: str = 'recon', out_dir: Optional[str] = None) -> None:
        self.num_images = num_images
        self.prefix_lengths = prefix_lengths
        self.metric_prefix = metric_prefix
        self.out_dir = out_dir

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self._draw(runner, runner.val_dataloader, metrics, 'val')

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self._draw(runner, runner.test_dataloader, metrics, 'test')

    @torch.no_grad()
    def _draw(self, runner, dataloader, metrics, split: str) -> None:
        if runner.rank != 0:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        dataset = dataloader.dataset
        batch = pseudo_collate([dataset[i] for i in range(min(self.num_images, len(dataset)))])
        images = model.data_preprocessor(batch, False)['inputs']
        ks = list(self.prefix_lengths or model.eval_prefix_lengths)
        was_training = model.training
        model.eval()
        out = model.reconstruct(images, ks)
        model.train(was_training)
        codec = model.codec
        omegas = {k: codec.cutoff(k) for k in ks} if codec.cutoffs() is not None else None
        # TiTok tokens and the nested row keep a schedule for evaluation but train towards the whole image
        trained = bool(getattr(codec, 'spectral_supervision', True)) or omegas is None
        pictures = {f'{split}_reconstructions': reconstruction_grid(model.to_unit(images), out['recons'],
                                                                    out['targets'], omegas, trained)}
        curve = psnr_curve(metrics or {}, self.metric_prefix, trained)
        if curve is not None:
            pictures[f'{split}_psnr_vs_k'] = curve
        for name, array in pictures.items():
            runner.visualizer.add_image(name, array, step=runner.iter)
            if self.out_dir is not None:
                folder = osp.join(runner.work_dir, self.out_dir)
                os.makedirs(folder, exist_ok=True)
                cv2.imwrite(osp.join(folder, f'{name}.png'), cv2.cvtColor(array, cv2.COLOR_RGB2BGR))
