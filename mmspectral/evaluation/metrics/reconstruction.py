"""``ReconstructionMetric``: PSNR and SSIM of every prefix length, and codebook usage."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from mmspectral.registry import METRICS
from ..functional import psnr, ssim


@METRICS.register_module()
class ReconstructionMetric(BaseMetric):
    """Quality of the reconstruction from each token prefix s_1..s_k.

    Reads the data samples of ``TokenizerModel.predict``: ``recons`` and ``targets`` (dicts k -> image in
    [0, 1]), ``image`` and ``tokens``. Images are rounded to 8-bit levels first, as the saved images would be.

    Reports, for every evaluated k, ``psnr_lowpass/k{k}`` and ``ssim_lowpass/k{k}`` against the low-pass
    target ``lowpass(image, w_k)`` (what prefix k is trained to give under spectral supervision; for a
    tokenizer with a schedule but ``spectral_supervision=False``, e.g. TiTok tokens in the tiny Table 4, a
    reference it never trained towards) and ``psnr_full/k{k}``,
    ``ssim_full/k{k}`` against the full image; ``psnr`` and ``ssim`` for all N tokens against the image;
    ``codebook_usage`` (share of the K codes used over the whole set) and ``codebook_perplexity``;
    ``codebook_perplexity_pos{a}-{b}``, the perplexity of the codes at each token position, averaged over
    ``position_bins`` groups of positions (a nested tokenizer whose late, high-frequency positions use a
    handful of codes carries no detail in them).

    Args:
        codebook_size: K; taken from the samples' token range when None (a lower bound then).
        position_bins: groups of token positions for the per-position perplexity (0: none).
        quantize_8bit: round images to 8-bit levels before measuring.
        collect_device, prefix: as MMEngine's BaseMetric.
    """

    default_prefix = 'recon'

    def __init__(self, codebook_size: Optional[int] = None, quantize_8bit: bool = True,
                 position_bins: int = 4, collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.codebook_size = codebook_size
        self.quantize_8bit = quantize_8bit
        self.position_bins = position_bins

    def _prep(self, img: torch.Tensor) -> torch.Tensor:
        img = img.float().clamp(0, 1)[None]
        return torch.round(img * 255) / 255 if self.quantize_8bit else img

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:  # MMEngine's Evaluator hands data samples over as dicts
            image = self._prep(sample['image'])
            recons, targets = sample['recons'], sample['targets']
            result = dict(tokens=sample['tokens'].cpu().numpy().astype(np.int64), k=sorted(recons))
            for k in result['k']:
                recon = self._prep(recons[k])
                target = self._prep(targets[k])
                result[f'psnr_lowpass/k{k}'] = float(psnr(recon, target))
                result[f'ssim_lowpass/k{k}'] = float(ssim(recon, target))
                result[f'psnr_full/k{k}'] = float(psnr(recon, image))
                result[f'ssim_full/k{k}'] = float(ssim(recon, image))
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        metrics: Dict[str, float] = {}
        ks = results[0]['k']
        for k in ks:
            for name in ('psnr_lowpass', 'ssim_lowpass', 'psnr_full', 'ssim_full'):
                metrics[f'{name}/k{k}'] = float(np.mean([r[f'{name}/k{k}'] for r in results]))
        metrics['psnr'] = metrics[f'psnr_full/k{ks[-1]}']
        metrics['ssim'] = metrics[f'ssim_full/k{ks[-1]}']
        tokens = np.stack([r['tokens'].ravel() for r in results])  # (num images, N)
        size = self.codebook_size or int(tokens.max()) + 1
        counts = np.bincount(tokens.ravel(), minlength=size)
        metrics['codebook_usage'] = float((counts > 0).mean())
        metrics['codebook_perplexity'] = _perplexity(counts)
        n = tokens.shape[1]
        for group in (np.array_split(np.arange(n), min(self.position_bins, n))
                      if self.position_bins > 0 else []):
            name = f'codebook_perplexity_pos{group[0] + 1}-{group[-1] + 1}'
            metrics[name] = float(np.mean([_perplexity(np.bincount(tokens[:, i], minlength=size))
                                           for i in group]))
        return metrics


def _perplexity(counts: np.ndarray) -> float:
    """exp(entropy) of the code distribution given by ``counts``."""
    probs = counts[counts > 0] / counts.sum()
    return float(np.exp(-(probs * np.log(probs)).sum()))
