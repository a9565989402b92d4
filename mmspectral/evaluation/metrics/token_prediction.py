"""``TokenPredictionMetric``: how well a generator predicts held-out token sequences, per position."""
from typing import Dict, List, Optional

import numpy as np
from mmengine.evaluator import BaseMetric

from mmspectral.registry import METRICS


@METRICS.register_module()
class TokenPredictionMetric(BaseMetric):
    """Teacher-forced cross-entropy (nats) and next-token accuracy of ``GeneratorModel.predict``'s samples.

    Reports ``ce`` and ``acc`` over all positions, and ``ce_pos{a}-{b}`` / ``acc_pos{a}-{b}`` for
    ``num_bins`` ranges of positions (1-based, inclusive), so the hard spectral positions stand out.
    """

    default_prefix = 'tokens'

    def __init__(self, num_bins: int = 8, collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_bins = num_bins

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            self.results.append(dict(ce=sample['token_ce'].float().cpu().numpy(),
                                     hit=sample['token_hit'].float().cpu().numpy()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        ce = np.stack([r['ce'] for r in results])  # (M, N)
        hit = np.stack([r['hit'] for r in results])
        n = ce.shape[1]
        metrics = dict(ce=float(ce.mean()), acc=float(hit.mean()))
        bins = max(1, min(self.num_bins, n))
        edges = [round(i * n / bins) for i in range(bins + 1)]
        for a, b in zip(edges[:-1], edges[1:]):
            name = f'pos{a + 1}-{b}' if b - a > 1 else f'pos{a + 1}'
            metrics[f'ce_{name}'] = float(ce[:, a:b].mean())
            metrics[f'acc_{name}'] = float(hit[:, a:b].mean())
        return metrics
