"""One optimiser per sub-module (generator and discriminator of a GAN-trained tokenizer)."""
from typing import Optional

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict

from mmspectral.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MultiOptimWrapperConstructor:
    """Builds an ``OptimWrapperDict`` with one wrapper per named entry of the config.

    Each entry is an ordinary optim_wrapper config plus ``module``, the dotted path of the sub-module it
    optimises (e.g. ``'tokenizer'``, ``'gan_loss.discriminator'``), and an optional ``paramwise_cfg``
    handled by MMEngine's DefaultOptimWrapperConstructor::

        optim_wrapper = dict(
            constructor='MultiOptimWrapperConstructor',
            generator=dict(module='tokenizer', optimizer=dict(type='AdamW', lr=1e-4), paramwise_cfg=...),
            discriminator=dict(module='gan_loss.discriminator', optimizer=dict(type='AdamW', lr=1e-4)))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if paramwise_cfg is not None:
            raise ValueError('MultiOptimWrapperConstructor: put paramwise_cfg inside each entry '
                             '(generator=dict(..., paramwise_cfg=...)), not beside them.')
        self.entries = {name: dict(cfg) for name, cfg in optim_wrapper_cfg.items()}
        for name, cfg in self.entries.items():
            if not isinstance(cfg, dict) or 'module' not in cfg:
                raise ValueError(f'optim_wrapper.{name} needs '
                                 'module=<dotted path of the sub-module it trains>.')

    @staticmethod
    def _submodule(model: nn.Module, path: str) -> nn.Module:
        # Walk the dotted path through DDP wrappers (MMSeparateDistributedDataParallel wraps each child).
        module = model
        for name in path.split('.'):
            if is_model_wrapper(module):
                module = module.module
            module = getattr(module, name)
        return module.module if is_model_wrapper(module) else module

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        wrappers = {}
        for name, cfg in self.entries.items():
            cfg = dict(cfg)
            path = cfg.pop('module')
            paramwise = cfg.pop('paramwise_cfg', None)
            try:
                module = self._submodule(model, path)
            except AttributeError as exc:
                raise ValueError(f'optim_wrapper.{name}.module={path!r} is not a sub-module of '
                                 f'{type(model).__name__}; check the name (e.g. "tokenizer", '
                                 '"gan_loss.discriminator").') from exc
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(module)
        return OptimWrapperDict(**wrappers)
