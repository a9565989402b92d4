"""Validation and test loops that also let metrics sample from the model (gFID during training).

``GenerationValLoop`` / ``GenerationTestLoop`` run MMEngine's ValLoop / TestLoop unchanged over the dataloader
(so dataloader metrics such as TokenPredictionMetric work as before), then call ``metric.generate(model)`` for
every metric of the evaluator that has such a method (GenerationMetric), with the model unwrapped from DDP, in
eval mode and without gradients, and only then evaluate. Hooks are called exactly as in MMEngine's loops, so
EMAHook's weight swap (before_val_epoch / after_val_epoch) covers the sampling too.

    val_cfg = dict(type='GenerationValLoop')
    test_cfg = dict(type='GenerationTestLoop')
"""
import time
from typing import Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.loops import _parse_losses

from mmspectral.registry import LOOPS

__all__ = ['GenerationValLoop', 'GenerationTestLoop', 'generate_for_metrics']


def generate_for_metrics(model, metrics: Sequence) -> int:
    """Call ``generate(model)`` of every metric that has it, with ``model`` unwrapped, in eval mode and
    without gradients. Returns how many metrics generated."""
    module = model.module if is_model_wrapper(model) else model
    generating = [m for m in metrics if callable(getattr(m, 'generate', None))]
    if not generating:
        return 0
    was_training = module.training
    module.eval()
    start = time.time()
    with torch.no_grad():
        for metric in generating:
            metric.generate(module)
    module.train(was_training)
    print_log(f'Sampling for {", ".join(type(m).__name__ for m in generating)}: {time.time() - start:.1f} s.',
              logger='current')
    return len(generating)


@LOOPS.register_module()
class GenerationValLoop(ValLoop):
    """MMEngine's ValLoop, plus ``metric.generate(model)`` before the evaluation (module docstring)."""

    def run(self) -> dict:
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        self.runner.model.eval()

        self.val_loss.clear()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)

        generate_for_metrics(self.runner.model, self.evaluator.metrics)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))

        if self.val_loss:
            metrics.update(_parse_losses(self.val_loss, 'val'))

        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics


@LOOPS.register_module()
class GenerationTestLoop(TestLoop):
    """MMEngine's TestLoop, plus ``metric.generate(model)`` before the evaluation (module docstring)."""

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()

        self.test_loss.clear()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)

        generate_for_metrics(self.runner.model, self.evaluator.metrics)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))

        if self.test_loss:
            metrics.update(_parse_losses(self.test_loss, 'test'))

        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics
