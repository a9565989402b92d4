"""Sharded training of the large generators (d24, d30) with MMEngine's FlexibleRunner and FSDP.

Configs switch to it with three keys (``configs/spectralar/*_fsdp.py``, docs/distributed.md)::

    runner_type = 'SpectralFlexibleRunner'
    strategy = dict(type='SpectralFSDPStrategy', state_dict_cfg='full',
                    model_wrapper=dict(auto_wrap_policy=dict(type='adaln_block_wrap_policy')))

What the mmspectral classes add to MMEngine's ``FlexibleRunner`` / ``FSDPStrategy``:

* :func:`adaln_block_wrap_policy`: the parameterised sub-layers of every ``AdaLNBlock`` (``ada_lin``,
  ``attn``, ``ffn``) become FSDP units. The block itself cannot be one: the generator computes every block's
  AdaLN modulation (``block.modulation(cond)``) before it runs the blocks, outside the block's ``forward``,
  where an FSDP unit's parameters are still sharded;
* the optimizer's parameter groups are made from the unwrapped model: after wrapping, FSDP (with
  ``use_orig_params=True``) shows every parameter as a 1-D shard, and MMEngine's constructor would then put
  every weight in the no-decay group of ``flat_decay_mult=0``;
* gradient clipping by norm uses ``FSDP.clip_grad_norm_``, the norm over all shards (MMEngine clips each
  rank's shard by its own norm, so ranks would scale their shards differently);
* optimizer states are saved and loaded with the argument order of current torch (MMEngine 0.10.7's order
  fails in ``FSDP.optim_state_dict_to_load``, which breaks resuming), and a single-file checkpoint (DDP,
  ``state_dict_cfg='full'``, converted) loads as ``load_from`` / resume even when shards are saved ('local');
* the process group is initialised with gloo when there is no GPU, and FSDP runs on the CPU (tests);
* top-level children whose parameters are all frozen (the tokenizer of a GeneratorModel) stay whole on every
  rank (FSDP ``ignored_modules``) instead of being all-gathered in every step;
* the checkpoint is loaded after the ``before_run`` hooks, as MMEngine's Runner does (FlexibleRunner loads it
  first, and EMAHook then fails on resume and ``load_from``); resuming restores every rank's RNG states;
* the runner resumes from its own checkpoints on current torch, finds the newest one with ``resume=True``,
  passes the config's ``compile`` on (MMEngine's ``FlexibleRunner.from_cfg`` drops it) and builds the
  strategy in the config's ``default_scope``;
* checkpoints are written under ``<name>.tmp`` and renamed into place once every rank has written its part
  (the single file of a full state dict, or the folder of per-rank shards), so a run killed while saving
  never leaves a partial ``iter_N.pth`` behind;
* :func:`set_tf32` and the strategy's ``allow_tf32`` switch TF32 matmuls and convolutions on Ampere+ GPUs.
"""
import copy
import os
import os.path as osp
import shutil
from functools import partial
from typing import Callable, Optional, Union

import torch
import torch.nn as nn
from mmengine._strategy import FSDPStrategy, SingleDeviceStrategy
from mmengine.device import get_device
from mmengine.dist import barrier, is_main_process
from mmengine.model import is_model_wrapper
from mmengine.optim import BaseOptimWrapper, OptimWrapperDict, build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import FlexibleRunner
from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp import StateDictType

from mmspectral.models.layers.blocks import adaln_block_wrap_policy
from mmspectral.registry import FUNCTIONS, RUNNERS, STRATEGIES, explain_missing_key, registry_hints
from .checkpoint import TMP_SUFFIX, atomic_write_path, trust_files
from .dist import init_distributed, set_tf32
from .heartbeat import collectives_watched
from .resume import ExactResumeMixin
from .runner import RegistryHintsLoopsMixin, frozen_params_summarised

__all__ = ['adaln_block_wrap_policy', 'set_tf32', 'SpectralFSDPStrategy', 'SpectralFlexibleRunner']


def _shard_globals() -> list:
    """What a rank's shard of a ``'local'`` FSDP state dict pickles besides tensors.

    torch's ShardedTensor, its process-group state and metadata classes, and ``getattr`` (which rebuilds
    their enum member). Exactly these are allowed, only while such a shard is read; every other load stays
    plain ``weights_only=True``.
    """
    from torch.distributed._shard.metadata import ShardMetadata
    from torch.distributed._shard.sharded_tensor.api import ShardedTensor
    from torch.distributed._shard.sharded_tensor.metadata import (MEM_FORMAT_ENCODING, ShardedTensorMetadata,
                                                                  TensorProperties)
    from torch.distributed._shard.sharded_tensor.shard import Shard
    from torch.distributed._shard.sharding_spec.api import EnumerableShardingSpec
    from torch.distributed._shard.sharding_spec.chunk_sharding_spec import ChunkShardingSpec
    from torch.distributed.remote_device import _remote_device
    return [ShardedTensor, ShardedTensor.ProcessGroupState, ShardMetadata, Shard, ShardedTensorMetadata,
            TensorProperties, MEM_FORMAT_ENCODING, ChunkShardingSpec, EnumerableShardingSpec, _remote_device,
            getattr]


def _resolve_function(policy: Union[str, dict, Callable, None]) -> Optional[Callable]:
    """A policy given by name or ``dict(type=name, **kwargs)`` -> the callable (mmspectral's FUNCTIONS)."""
    if isinstance(policy, str):
        policy = dict(type=policy)
    if isinstance(policy, dict):
        policy = dict(policy)
        fn = policy.pop('type')
        if isinstance(fn, str):
            name, fn = fn, FUNCTIONS.get(fn)
            if fn is None:
                raise KeyError(explain_missing_key(name, FUNCTIONS))
        return partial(fn, **policy)
    return policy


def _fsdp_clip_grad_norm(model: nn.Module, params, max_norm: float, norm_type: float = 2.0, **kwargs):
    """Stands in for ``torch.nn.utils.clip_grad_norm_``: the norm over every rank's shard (FSDP root only)."""
    return model.clip_grad_norm_(max_norm, norm_type)


@STRATEGIES.register_module()
class SpectralFSDPStrategy(FSDPStrategy):
    """MMEngine's FSDPStrategy with the fixes mmspectral's generators need (module docstring).

    Args:
        ignore_frozen_children: keep top-level children with only frozen parameters out of FSDP (whole on
            every rank, moved to the device).
        allow_tf32: if not None, :func:`set_tf32` with this value when the strategy is built.
        **kwargs: as ``FSDPStrategy``: ``model_wrapper`` (``auto_wrap_policy`` may be a name or a dict from
            mmspectral's FUNCTIONS registry, e.g. ``dict(type='adaln_block_wrap_policy')``),
            ``state_dict_cfg`` ('full': rank 0 writes one ordinary checkpoint; 'local': one file per rank in
            a folder, see ``tools/model_converters/fsdp_to_single.py``), ``activation_checkpointing``,
            ``skip_init_weights``.
    """

    def __init__(self, *, ignore_frozen_children: bool = True, allow_tf32: Optional[bool] = None,
                 **kwargs) -> None:
        self.ignore_frozen_children = ignore_frozen_children
        self._pending_optim_cfg = None
        self._prebuilt_optim = None
        self._full_file = False
        if allow_tf32 is not None:
            set_tf32(allow_tf32)
        super().__init__(**kwargs)

    def _setup_distributed(self, launcher: str = 'pytorch', backend: Optional[str] = None, **kwargs) -> None:
        if launcher == 'mpi':
            super()._setup_distributed(launcher, backend or 'nccl', **kwargs)
        else:
            init_distributed(launcher, backend, **kwargs)  # gloo without a GPU

    def prepare(self, model, *, optim_wrapper=None, **kwargs):
        self._pending_optim_cfg = optim_wrapper
        try:
            return super().prepare(model, optim_wrapper=optim_wrapper, **kwargs)
        finally:
            self._pending_optim_cfg = self._prebuilt_optim = None

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        if is_model_wrapper(model):
            return model
        cfg = dict(self.model_wrapper or {})
        cfg.setdefault('type', 'MMFullyShardedDataParallel')
        cfg['auto_wrap_policy'] = _resolve_function(cfg.get('auto_wrap_policy'))
        if not torch.cuda.is_available():
            cfg.setdefault('device_id', torch.device('cpu'))  # FSDP refuses the CPU unless told explicitly
        if self.ignore_frozen_children and 'ignored_modules' not in cfg:
            frozen = [child for child in model.children()
                      if any(True for _ in child.parameters()) and not any(p.requires_grad
                                                                           for p in child.parameters())]
            for child in frozen:
                child.to(get_device())
            if frozen:
                cfg['ignored_modules'] = frozen
        self._prebuild_optim_wrapper(model)
        self.model_wrapper = cfg
        wrapped = super()._wrap_model(model)
        units = sum(isinstance(m, FSDP) for m in wrapped.modules())
        ignored = [name for name, child in model.named_children()
                   if child in cfg.get('ignored_modules', ())]
        self.logger.info(f'FSDP: {units} units over {self.world_size} ranks '
                         f'({wrapped.sharding_strategy.name}, device {wrapped.compute_device}); '
                         f'kept whole on every rank: {ignored or "nothing"}.')
        return wrapped

    def _prebuild_optim_wrapper(self, model: nn.Module) -> None:
        """Build the optimizer from the unwrapped model, where parameters still have their real shapes."""
        cfg = self._pending_optim_cfg
        if not isinstance(cfg, dict):
            return
        cfg = copy.deepcopy(cfg)
        if cfg.get('type', 'OptimWrapper') in ('AmpOptimWrapper', ):
            cfg.setdefault('use_fsdp', True)  # sharded gradient scaler
        with frozen_params_summarised():
            wrapper = build_optim_wrapper(model, cfg)
        if isinstance(wrapper, OptimWrapperDict):
            return  # several optimizers: MMEngine's path after wrapping
        self._prebuilt_optim = wrapper

    def build_optim_wrapper(self, optim_wrapper, model: Optional[nn.Module] = None) -> BaseOptimWrapper:
        prebuilt, self._prebuilt_optim = self._prebuilt_optim, None
        if prebuilt is not None:
            # With use_orig_params=True FSDP keeps the original Parameter objects (their data become
            # shards), so the optimizer built before wrapping already holds the right parameters. (MMEngine's
            # own rebuild calls optim_state_dict_to_load with an argument order current torch rejects.)
            managed = {id(p) for p in model.parameters()}
            held = [p for group in prebuilt.optimizer.param_groups for p in group['params']]
            if any(id(p) not in managed for p in held):
                raise RuntimeError('After FSDP wrapping the optimizer holds parameters the model no longer '
                                   'has; set model_wrapper=dict(use_orig_params=True) in the strategy.')
            wrapper = prebuilt
        else:
            with frozen_params_summarised():
                wrapper = super().build_optim_wrapper(optim_wrapper, model)
        wrappers = list(wrapper.values()) if isinstance(wrapper, OptimWrapperDict) else [wrapper]
        clipped = [w for w in wrappers if getattr(w, 'clip_func', None) is torch.nn.utils.clip_grad_norm_]
        if clipped and len(wrappers) > 1:
            raise NotImplementedError('SpectralFSDPStrategy clips gradients by norm over the whole FSDP '
                                      'model, so it supports clip_grad=dict(max_norm=...) with one optimizer '
                                      'only; drop clip_grad or train with DDP (the default SpectralRunner).')
        for w in clipped:
            w.clip_func = partial(_fsdp_clip_grad_norm, model)
        return wrapper

    def optim_state_dict(self) -> dict:
        return FSDP.optim_state_dict(self.model, self.optim_wrapper.optimizer)

    def load_checkpoint(self, filename: str, **kwargs) -> dict:
        """A folder of rank shards (``state_dict_cfg='local'``), or one file: a full checkpoint (DDP,
        ``state_dict_cfg='full'``, converted), which also loads into a model that saves local shards."""
        self._full_file = self._is_full_state_dict() or osp.isfile(filename)
        if self._is_full_state_dict():
            return super().load_checkpoint(filename, **kwargs)
        if not self._full_file:  # a folder of rank shards
            with torch.serialization.safe_globals(_shard_globals()):
                return super().load_checkpoint(filename, **kwargs)
        with FSDP.state_dict_type(self.model, StateDictType.FULL_STATE_DICT, FullStateDictConfig(),
                                  FullOptimStateDictConfig()):
            return SingleDeviceStrategy.load_checkpoint(self, filename, **kwargs)

    def load_optim_state_dict(self, state_dict: dict) -> None:
        # MMEngine passes (state_dict, model, optimizer); current torch takes (model, optimizer, state_dict).
        model, optimizer = self.model, self.optim_wrapper.optimizer
        if self._full_file and not self._is_full_state_dict():
            with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, FullStateDictConfig(),
                                      FullOptimStateDictConfig()):
                state_dict = FSDP.optim_state_dict_to_load(model, optimizer, state_dict)
        else:
            state_dict = FSDP.optim_state_dict_to_load(model, optimizer, state_dict)
        self.optim_wrapper.load_state_dict(state_dict)


@RUNNERS.register_module()
class SpectralFlexibleRunner(RegistryHintsLoopsMixin, ExactResumeMixin, FlexibleRunner):
    """MMEngine's FlexibleRunner with mmspectral's checkpoint, resume, compile and registry fixes.

    Select it with ``runner_type = 'SpectralFlexibleRunner'`` and a ``strategy`` (``SpectralFSDPStrategy``).
    """

    @classmethod
    def from_cfg(cls, cfg) -> 'SpectralFlexibleRunner':
        cfg = copy.deepcopy(cfg)
        keys = ('experiment_name', 'train_dataloader', 'optim_wrapper', 'param_scheduler', 'train_cfg',
                'val_dataloader', 'val_evaluator', 'val_cfg', 'test_dataloader', 'test_evaluator', 'test_cfg',
                'strategy', 'auto_scale_lr', 'default_hooks', 'custom_hooks', 'data_preprocessor',
                'load_from', 'launcher', 'log_processor', 'visualizer')
        kwargs = {k: cfg.get(k) for k in keys}
        kwargs.update(work_dir=cfg.get('work_dir', 'work_dirs'), env_cfg=cfg.get('env_cfg') or dict(),
                      resume=cfg.get('resume', False), log_level=cfg.get('log_level', 'INFO'),
                      default_scope=cfg.get('default_scope', 'mmengine'),
                      randomness=cfg.get('randomness', dict(seed=None)), compile=cfg.get('compile', False))
        with registry_hints():
            return cls(model=cfg['model'], cfg=cfg, **kwargs)

    def build_strategy(self, strategy=None, **kwargs):
        # FlexibleRunner builds the strategy before it sets its default scope; mmspectral's strategies live
        # in mmspectral's registry.
        with registry_hints(), DefaultScope.overwrite_default_scope(self.cfg.get('default_scope')):
            return super().build_strategy(strategy, **kwargs)

    _defer_loading = False  # set while train() runs, until the before_run hooks have run

    def load_or_resume(self) -> None:
        if self._defer_loading:
            return  # called again from call_hook('before_run')
        super().load_or_resume()  # ExactResumeMixin: auto-resume, then FlexibleRunner's

    def save_checkpoint(self, out_dir: str, filename: str, file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True,
                        meta: Optional[dict] = None, by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """MMEngine's ``save_checkpoint`` plus every rank's RNG states in ``meta['rng_states']``, written to
        ``<filename>.tmp`` and renamed into place (local disks).

        Every rank must call it, as CheckpointHook does: the state dict is gathered from all of them.
        """
        kwargs, local = self._checkpoint_kwargs(out_dir, file_client_args, meta, backend_args,
                                                save_optimizer=save_optimizer,
                                                save_param_scheduler=save_param_scheduler, by_epoch=by_epoch)
        if not local:
            super().save_checkpoint(out_dir, filename, file_client_args, **kwargs)
            return
        path = osp.join(out_dir, filename)
        tmp = path + TMP_SUFFIX
        if is_main_process() and osp.isdir(tmp):  # left by a run killed while saving: no stale shards
            shutil.rmtree(tmp)
        barrier()
        super().save_checkpoint(out_dir, osp.basename(tmp), None, **kwargs)
        barrier()  # sharded state dicts: every rank's file is in the folder before it is renamed
        if is_main_process():
            if osp.isdir(tmp):  # per-rank shards ('local' state dict)
                if osp.isdir(path):
                    shutil.rmtree(path)
                os.replace(tmp, path)
            else:
                with atomic_write_path(path):  # the file already lies at the path this names: flush, rename
                    pass
        barrier()

    def call_hook(self, fn_name: str, **kwargs) -> None:
        super().call_hook(fn_name, **kwargs)
        if fn_name == 'before_run' and self._defer_loading:
            self._defer_loading = False
            self.load_or_resume()

    def train(self) -> nn.Module:
        # MMEngine's FlexibleRunner loads the checkpoint before the before_run hooks, so hooks that set up
        # state there and fill it from the checkpoint (EMAHook's average) fail on resume or load_from; the
        # Runner's order is kept instead: before_run, then the checkpoint.
        self._defer_loading = True
        try:
            # the model is built here: a tokenizer_checkpoint the config trusts loads with full unpickling
            with registry_hints(), trust_files(self.trusted_files()), collectives_watched(self):
                model = super().train()
            self.report_skipped_images()
            return model
        finally:
            self._defer_loading = False
