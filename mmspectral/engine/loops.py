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


class _SampleBeforeEvaluate:
    """Runs the parent loop unchanged, with the evaluator's ``evaluate`` preceded by the metrics' sampling."""

    def run(self) -> dict:
        evaluate = self.evaluator.evaluate

        def sample_then_evaluate(size: int) -> dict:
            generate_for_metrics(self.runner.model, self.evaluator.metrics)
            return evaluate(size)

        self.evaluator.evaluate = sample_then_evaluate
        try:
            return super().run()
        finally:
            del self.evaluator.evaluate  # back to the class's method


@LOOPS.register_module()
class GenerationValLoop(_SampleBeforeEvaluate, ValLoop):
    """MMEngine's ValLoop, plus ``metric.generate(model)`` before the evaluation (module docstring)."""


@LOOPS.register_module()
class GenerationTestLoop(_SampleBeforeEvaluate, TestLoop):
    """MMEngine's TestLoop, plus ``metric.generate(model)`` before the evaluation (module docstring)."""
