"""The reconstruction pictures name what the lower row and the low-pass curve are: a tokenizer's targets only
when it trained towards them (TiTok tokens keep a schedule for evaluation but train towards the image)."""
import matplotlib.axes
import pytest
import torch

from mmspectral.engine.hooks import psnr_curve, reconstruction_grid


@pytest.fixture
def ylabels(monkeypatch):
    seen = []
    original = matplotlib.axes.Axes.set_ylabel

    def record(self, label, *args, **kwargs):
        seen.append(label)
        return original(self, label, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, 'set_ylabel', record)
    return seen


@pytest.mark.parametrize('omegas,trained,lower', [({1: 1, 2: 4}, True, 'low-pass'),
                                                  ({1: 1, 2: 4}, False, 'low-pass\n(not its target)'),
                                                  (None, False, 'image')])
def test_grid_labels_the_lower_row_by_what_it_is(ylabels, omegas, trained, lower):
    images = torch.rand(2, 3, 8, 8)
    recons = {k: torch.rand(2, 3, 8, 8) for k in (1, 2)}
    array = reconstruction_grid(images, recons, recons, omegas, trained_on_lowpass=trained)
    assert array.ndim == 3 and array.shape[2] == 3
    assert ylabels == ['decoded', lower] * 2


def test_psnr_curve_names_a_low_pass_curve_that_was_never_the_target(monkeypatch):
    labels = []
    original = matplotlib.axes.Axes.plot

    def record(self, *args, **kwargs):
        labels.append(kwargs.get('label'))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, 'plot', record)
    metrics = {'recon/psnr_lowpass/k1': 20.0, 'recon/psnr_lowpass/k2': 22.0,
               'recon/psnr_full/k1': 14.0, 'recon/psnr_full/k2': 15.0}
    psnr_curve(metrics, trained_on_lowpass=True)
    psnr_curve(metrics, trained_on_lowpass=False)
    assert labels == ['vs low-pass target of w_k', 'vs full image',
                      'vs low-pass of w_k (never its target)', 'vs full image']
