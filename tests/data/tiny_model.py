"""A tiny model registered from outside the package, for Runner / distributed / resume tests.

Configs load it through custom_imports=dict(imports=['tiny_model']), as a user's own component would be.
"""
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmspectral.registry import MODELS
from mmspectral.spectral import lowpass


@MODELS.register_module()
class TinySpectralAutoencoder(BaseModel):
    """Conv autoencoder trained to reproduce a low-pass target of its input."""

    def __init__(self, width: int = 8, omega: int = 8, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.omega = omega
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        recon = self.net(inputs)
        if mode == 'loss':
            return dict(loss_rec=F.mse_loss(recon, lowpass(inputs, self.omega)))
        if mode == 'predict':
            return [recon[i] for i in range(recon.shape[0])]
        return recon


from mmengine.evaluator import BaseMetric  # noqa: E402

from mmspectral.registry import METRICS  # noqa: E402


@METRICS.register_module()
class TinyMeanMetric(BaseMetric):
    """Mean pixel value of the predictions (enough to see that a test loop ran over the whole set)."""

    def process(self, data_batch, data_samples):
        for pred in data_samples:
            self.results.append(float(pred.float().mean()))

    def compute_metrics(self, results):
        return dict(mean_pixel=sum(results) / len(results), count=len(results))
