"""Checks before a run builds anything, so that bad input fails in seconds rather than after the set-up.

:func:`check_config` reads the config only (no network is built, no dataset loaded) and gathers every problem
into one :class:`ConfigCheckError`, each saying what is wrong and what to do:

* top-level keys that are close misspellings of keys the Runner reads (it ignores unknown keys silently), and
  MMCV 1.x keys that MMEngine never reads;
* config keys that the class named by ``type`` does not take (with the closest valid argument names);
* files named by the arguments a component declares in ``path_arguments`` (weights, checkpoints, reference
  statistics; :mod:`.component_checks`) that do not exist, and URLs (nothing is downloaded);
* data roots of the splits the run uses that do not exist or hold no images / no extracted tokens;
* tokenizers: an image size not divisible by the patch size, a frequency schedule that does not fit the number
  of tokens and the image size, a dataset whose image size differs from the tokenizer's;
* a generator whose ``num_tokens`` / ``vocab_size`` differ from its tokenizer's or from its tokens';
* a collective timeout (``env_cfg.dist_cfg.timeout``, ``$MMSPECTRAL_DIST_TIMEOUT``) that is not a positive
  number of seconds.

:func:`check_runner_checkpoint` runs once the Runner is built, before it reads any data: the checkpoint it is
about to load (``load_from``, or the newest one for ``resume``) must fit the model, shape for shape.
"""
import difflib
import inspect
import os
import os.path as osp
import re
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.runner import FlexibleRunner, Runner
from torch.utils.data import DataLoader

from mmspectral.datasets.transforms import output_size_rule
from mmspectral.fileio import (SAME_ARCHITECTURE, CheckpointLoadError, diff_state_dict, read_state_dict,
                               trust_files)
from mmspectral.registry import (ATTN_MASKS, DATA_SAMPLERS, DATASETS, FEATURE_EXTRACTORS, FREQ_SCHEDULES,
                                 FUNCTIONS, GENERATORS, HOOKS, LOOPS, METRICS, MODEL_WRAPPERS, MODELS,
                                 OPTIM_WRAPPERS, OPTIMIZERS, PARAM_SCHEDULERS, QUANTIZERS, STRATEGIES,
                                 TOKENIZERS, TRANSFORMS, VISBACKENDS, VISUALIZERS, WEIGHT_INITIALIZERS,
                                 explain_missing_key)
from mmspectral.utils.build import accepted_arguments, effective_arguments, unknown_argument_message
from .component_checks import extra_kwargs_accepted, path_arguments
from .dist import dist_timeout
from .resume import find_latest_checkpoint

__all__ = ['ConfigCheckError', 'check_config', 'check_runner_checkpoint', 'check_checkpoint_fits']

# Top-level keys the Runners read besides their __init__ arguments, and keys mmspectral's tools set.
_EXTRA_KEYS = {'runner_type', 'custom_imports', 'work_dir', 'launcher', 'model_wrapper_cfg', 'strategy',
               'find_unused_parameters', 'activation_checkpointing', 'efficient_conv_bn_eval', 'compile',
               'skip_checks', 'trust_checkpoints', 'start_over'}
# MMCV 1.x keys that MMEngine ignores, with what replaces them.
_LEGACY_KEYS = {
    'optimizer': "optim_wrapper=dict(optimizer=dict(type='AdamW', ...))",
    'optimizer_config': 'optim_wrapper=dict(clip_grad=...)',
    'lr_config': 'param_scheduler=[...]',
    'runner': "train_cfg=dict(type='IterBasedTrainLoop', max_iters=...)",
    'checkpoint_config': 'default_hooks.checkpoint',
    'log_config': 'default_hooks.logger',
    'evaluation': 'train_cfg.val_interval and val_evaluator',
    'data': 'train_dataloader / val_dataloader / test_dataloader',
    'resume_from': 'load_from=PATH with resume=True (or tools/train.py --resume PATH)',
    'total_iters': 'train_cfg.max_iters',
}
_LOAD_FROM_HINT = 'It must be a checkpoint written by tools/train.py.'
_DEFAULT_HINT = ('Check the path; mmspectral never downloads weights (docs/faq.md says where each file '
                 'comes from).')
_DATALOADER_KEYS = {'dataset', 'sampler', 'batch_sampler', 'collate_fn', 'worker_init_fn',
                    'num_batch_per_epoch', 'disable_subprocess_warning'}
# Keys that MMEngine takes out of a component's config before it builds the component.
_CONSUMED_KEYS = {'default_hooks': {'priority'}, 'custom_hooks': {'priority'},
                  'optim_wrapper': {'paramwise_cfg', 'constructor', 'module'}}
# Where the class named by ``type`` is looked up first, by the key that holds the dict.
_CONTEXT_REGISTRIES = {
    'model': MODELS, 'tokenizer': TOKENIZERS, 'generator': GENERATORS, 'quantizer': QUANTIZERS,
    'freq_schedule': FREQ_SCHEDULES, 'attn_mask': ATTN_MASKS, 'dataset': DATASETS, 'datasets': DATASETS,
    'pipeline': TRANSFORMS, 'sampler': DATA_SAMPLERS, 'collate_fn': FUNCTIONS, 'optimizer': OPTIMIZERS,
    'optim_wrapper': OPTIM_WRAPPERS, 'param_scheduler': PARAM_SCHEDULERS, 'default_hooks': HOOKS,
    'custom_hooks': HOOKS, 'val_evaluator': METRICS, 'test_evaluator': METRICS, 'visualizer': VISUALIZERS,
    'vis_backends': VISBACKENDS, 'train_cfg': LOOPS, 'val_cfg': LOOPS, 'test_cfg': LOOPS,
    'model_wrapper_cfg': MODEL_WRAPPERS, 'init_cfg': WEIGHT_INITIALIZERS, 'strategy': STRATEGIES,
    'extractor': FEATURE_EXTRACTORS}
_ALL_LOOKUP = tuple(dict.fromkeys(_CONTEXT_REGISTRIES.values()))
_SPLITS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class ConfigCheckError(ValueError):
    """Problems found in a config before the run started; the message lists each with what to do."""

    def __init__(self, problems: Sequence[str], source: Optional[str] = None) -> None:
        self.problems = list(problems)
        count = f'{len(self.problems)} problem' + ('s' if len(self.problems) > 1 else '')
        lines = [f'{count}{" in " + source if source else ""}, found before the run started:']
        lines += [f'  {i}. {p}' for i, p in enumerate(self.problems, 1)]
        lines.append('Fix the config (or --cfg-options) and run again; tools/train.py --skip-checks starts '
                     'without these checks.')
        super().__init__('\n'.join(lines))


def _used_sections(cfg: Mapping, mode: str) -> List[str]:
    """The top-level keys a run of ``mode`` ('train', 'test' or 'model') builds from."""
    sections = ['model', 'data_preprocessor', 'model_wrapper_cfg', 'load_from']
    if mode == 'train':
        sections += ['train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler', 'default_hooks',
                     'custom_hooks', 'visualizer']
        if all(cfg.get(k) is not None for k in ('val_dataloader', 'val_cfg', 'val_evaluator')):
            sections += ['val_dataloader', 'val_cfg', 'val_evaluator']
    elif mode == 'test':
        sections += ['test_dataloader', 'test_cfg', 'test_evaluator', 'default_hooks', 'custom_hooks',
                     'visualizer']
    elif mode != 'model':
        raise ValueError(f"check_config mode must be 'train', 'test' or 'model', got {mode!r}.")
    return [s for s in sections if cfg.get(s) is not None]


def _walk(obj: Any, path: str, context: str) -> Iterator[Tuple[str, str, Mapping]]:
    """Every dict under ``obj`` as (path, context, dict); the context is the key that holds the dict."""
    if isinstance(obj, Mapping):
        yield path, context, obj
        for key, value in obj.items():
            if isinstance(value, (Mapping, list, tuple)):
                yield from _walk(value, f'{path}.{key}', str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _walk(value, f'{path}[{i}]', context)


def _resolve(type_: Any, context: str) -> Any:
    """The class (or function) a ``type`` names, looked up where ``context`` says first; None if unknown."""
    if not isinstance(type_, str):
        return type_ if callable(type_) else None
    first = [_CONTEXT_REGISTRIES[context]] if context in _CONTEXT_REGISTRIES else []
    for registry in first + [r for r in _ALL_LOOKUP if r not in first]:
        try:
            found = registry.get(type_)
        except Exception:  # a scoped name of a package that is not installed
            found = None
        if found is not None:
            return found
    return None


class _Checker:
    """Gathers the problems of one config."""

    def __init__(self, cfg: Mapping, mode: str) -> None:
        self.cfg = cfg
        self.sections = _used_sections(cfg, mode)
        self.problems: List[str] = []

    def add(self, message: str) -> None:
        self.problems.append(message)

    def run(self) -> List[str]:
        self.check_top_level_keys()
        for section in self.sections:
            self.check_arguments(section)
            self.check_paths(section)
        for section in _SPLITS:
            if section in self.sections and isinstance(self.cfg[section], Mapping):
                self.check_dataloader(section)
        if 'model' in self.sections and isinstance(self.cfg['model'], Mapping):
            self.check_model(self.cfg['model'])
        self.check_dist_timeout()
        return self.problems

    def check_dist_timeout(self) -> None:
        env_cfg = self.cfg.get('env_cfg')
        dist_cfg = env_cfg.get('dist_cfg') if isinstance(env_cfg, Mapping) else None
        timeout = dist_cfg.get('timeout') if isinstance(dist_cfg, Mapping) else None
        try:
            dist_timeout(timeout)  # the config's value, else the environment variable's
        except ValueError as exc:
            self.add(str(exc))

    # ------------------------------------------------------------------ keys and arguments
    def check_top_level_keys(self) -> None:
        known = set(_EXTRA_KEYS)
        for runner in (Runner, FlexibleRunner):
            known |= set(inspect.signature(runner.__init__).parameters) - {'self', 'cfg'}
        for key in self.cfg:
            if key in known or key.startswith('_'):
                continue
            if key in _LEGACY_KEYS:
                self.add(f'{key}: an MMCV 1.x key that MMEngine never reads, so it has no effect. Use '
                         f'{_LEGACY_KEYS[key]} instead.')
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
            if close:  # other unknown keys are variables shared by config files (tiny_tokenizer)
                self.add(f'{key}: unknown top-level key; did you mean {close[0]!r}? The Runner ignores '
                         'unknown keys, so this setting would have no effect. Rename it.')

    def check_arguments(self, section: str) -> None:
        consumed = _CONSUMED_KEYS.get(section, set())
        for path, context, node in _walk(self.cfg[section], section, section):
            if 'type' not in node:
                continue
            cls = _resolve(node['type'], context)
            if cls is None and isinstance(node['type'], str) and '.' not in node['type'] \
                    and context in _CONTEXT_REGISTRIES:
                # some builders (MMEngine's optimizer constructor) meet it as "None is not a callable object"
                self.add(f'{path}.type: ' + explain_missing_key(node['type'], _CONTEXT_REGISTRIES[context]))
                continue
            accepted = accepted_arguments(cls) if cls is not None else None
            if accepted is None and cls is not None:  # it takes **kwargs: where do they go?
                accepted = extra_kwargs_accepted(cls, node, _resolve)
            if accepted is None:  # an unknown type is reported, with close matches, by the registry
                continue
            name = getattr(cls, '__name__', str(node['type']))
            unknown = [key for key in node if key != 'type' and not key.startswith('_')
                       and key not in consumed and key not in accepted]
            for key in unknown:
                self.add(unknown_argument_message(name, key, accepted, f'{path}.{key}'))
            if context == 'optimizer' and not unknown and inspect.isclass(cls) \
                    and issubclass(cls, torch.optim.Optimizer):
                self.check_optimizer(cls, node, path)

    def check_optimizer(self, cls: type, node: Mapping, path: str) -> None:
        """Build the optimizer over one dummy parameter: torch checks every value (betas=0.9, lr=-1)."""
        args = {k: v for k, v in node.items() if k != 'type' and not k.startswith('_')}
        if args.get('lr') is None:  # it may come from the schedule
            args.pop('lr', None)
        try:
            cls([torch.nn.Parameter(torch.zeros(1))], **args)
        except (ValueError, TypeError, RuntimeError) as exc:
            self.add(f'{path}: {cls.__name__}({", ".join(f"{k}={v!r}" for k, v in args.items())}) is '
                     f'refused by torch: {exc}. Fix the value in the config.')

    def check_dataloader(self, section: str) -> None:
        loader = self.cfg[section]
        accepted = (set(inspect.signature(DataLoader.__init__).parameters) - {'self'}) | _DATALOADER_KEYS
        for key in loader:
            if key not in accepted and not key.startswith('_'):
                self.add(unknown_argument_message('the data loader', key, accepted, f'{section}.{key}'))
        self.check_dataset(loader.get('dataset'), f'{section}.dataset')

    # ------------------------------------------------------------------ files
    def check_paths(self, section: str) -> None:
        if section == 'load_from':
            self.check_path('load_from', self.cfg['load_from'], _LOAD_FROM_HINT)
            return
        for path, context, node in _walk(self.cfg[section], section, section):
            cls = _resolve(node['type'], context) if 'type' in node else None
            for key, hint in path_arguments(cls).items():
                if key in node:
                    self.check_path(f'{path}.{key}', node[key], hint or _DEFAULT_HINT)

    def check_path(self, where: str, value: Any, hint: str) -> None:
        if not isinstance(value, str) or not value:
            return
        if '://' in value:
            self.add(f'{where}={value!r} would be downloaded, and mmspectral never downloads at run time. '
                     'Download the file yourself and give its local path.')
        elif not osp.isfile(osp.expanduser(value)):
            self.add(f'{where}={value!r}: no such file (relative paths start from {os.getcwd()}). {hint}')

    # ------------------------------------------------------------------ data
    def check_dataset(self, dataset: Any, where: str) -> None:
        if not isinstance(dataset, Mapping):
            return
        for key in ('dataset', 'datasets'):  # dataset wrappers
            inner = dataset.get(key)
            for i, item in enumerate(inner if isinstance(inner, (list, tuple)) else [inner]):
                self.check_dataset(item, f'{where}.{key}' + (f'[{i}]' if key == 'datasets' else ''))
        cls = _resolve(dataset.get('type'), 'dataset')
        if inspect.isclass(cls) and callable(getattr(cls, 'check_config', None)):
            for problem in cls.check_config(effective_arguments(cls, dataset), where, self.cfg):
                self.add(problem)
        else:
            root = dataset.get('data_root')
            if isinstance(root, str) and root and not osp.exists(osp.expanduser(root)):
                self.add(f'{where}.data_root={root!r} does not exist. Set it to where the data is.')

    # ------------------------------------------------------------------ model
    def check_model(self, model: Mapping) -> None:
        tok = None
        for path, context, node in _walk(model, 'model', 'model'):
            cls = _resolve(node['type'], context) if 'type' in node else None
            if inspect.isclass(cls) and callable(getattr(cls, 'check_config', None)):
                args = effective_arguments(cls, node)
                for problem in cls.check_config(args, path, self.cfg):
                    self.add(problem)
                if path == 'model.tokenizer':
                    tok = args
        if tok is None or not all(k in tok for k in ('num_tokens', 'codebook_size', 'image_size')):
            return
        model_cls = _resolve(model.get('type'), 'model')
        reads_images = getattr(model_cls, 'reads_images', None)
        if not (reads_images(effective_arguments(model_cls, model)) if reads_images is not None
                else model.get('encode_on_the_fly')):
            return  # the model reads tokens, not images
        for section in _SPLITS:
            loader = self.cfg[section] if section in self.sections else None
            size = _image_size(loader.get('dataset')) if isinstance(loader, Mapping) else None
            if size is not None and size != tok['image_size']:
                self.add(f'{section}.dataset gives {size}x{size} images but model.tokenizer.image_size='
                         f'{tok["image_size"]}: the first step would fail. Make them agree (the dataset\'s '
                         "image_size or crop_size, or the tokenizer's image_size).")


def _image_size(dataset: Any) -> Optional[int]:
    """The side of the square images a dataset config yields, where the config tells it: the last transform
    of its pipeline that declares an output size (a crop), else the dataset's own (``output_size``)."""
    if not isinstance(dataset, Mapping):
        return None
    size = None
    for step in dataset.get('pipeline') or ():
        cls = _resolve(step.get('type'), 'pipeline') if isinstance(step, Mapping) else None
        rule = output_size_rule(cls) if cls is not None else None
        if rule is not None:
            size = rule(effective_arguments(cls, step))
    if size is None:
        cls = _resolve(dataset.get('type'), 'dataset')
        rule = output_size_rule(cls) if cls is not None else None
        if rule is not None:
            size = rule(effective_arguments(cls, dataset))
    return size if isinstance(size, int) else None


def check_config(cfg: Mapping, mode: str = 'train') -> None:
    """Check a config before anything is built; raise one :class:`ConfigCheckError` listing every problem.

    Args:
        cfg: a loaded config (after ``--cfg-options``), e.g. from :func:`mmspectral.utils.load_config`.
        mode: 'train' checks the model, the training split and (when ``val_cfg``, ``val_dataloader`` and
            ``val_evaluator`` are all set) the validation split; 'test' the model and the test split; 'model'
            the model, ``load_from`` and the top-level keys only.
    """
    problems = _Checker(cfg, mode).run()
    if problems:
        raise ConfigCheckError(problems, getattr(cfg, 'filename', None))


def _unwrapped_key(key: str) -> str:
    return re.sub(r'(^|\.)module\.', r'\1', key)


def check_checkpoint_fits(model: nn.Module, path: str, source: str = 'load_from') -> None:
    """Raise a CheckpointLoadError if the Runner checkpoint ``path`` is of another architecture.

    Shapes that differ, or no parameter name in common, are errors. Keys that only one side has are allowed
    (the Runner warns about them): stage-1 weights loaded into a stage-2 model, whose losses have parameters
    of their own, are such a case. The file loads as the Runner will load it (``weights_only=True`` unless
    the config trusts it), memory-mapped so that its tensors are not read.
    """
    if is_model_wrapper(model):
        model = model.module
    state = read_state_dict(path, mmap=True)
    # Model wrappers (DDP around the whole model or around its parts, as the GAN recipe does) add 'module.'
    # segments that the Runner's loader strips: compare names without them.
    state = {_unwrapped_key(k): v for k, v in state.items()}
    own = {_unwrapped_key(k): v for k, v in model.state_dict().items()}
    diff = diff_state_dict(own, state)
    shared = len(own) - len(diff.missing)
    if not diff.mis_shaped and (shared or not own):
        return
    if diff.mis_shaped:
        what = diff._replace(missing=[], unexpected=[]).describe('checkpoint')
    else:
        what = f'none of its {len(state)} keys is a parameter of the model (e.g. {next(iter(state), "")!r})'
    raise CheckpointLoadError(
        f'{source} {path} does not fit {type(model).__name__}: {what} ({len(diff.missing)} model keys '
        f'missing from it, {len(diff.unexpected)} keys the model does not have). {SAME_ARCHITECTURE} Point '
        "it at a checkpoint of this model, or set the model to the checkpoint's settings.")


def check_runner_checkpoint(runner: Runner) -> None:
    """Check the checkpoint a built Runner is about to load (``load_from``, or the newest one for ``resume``).

    A Runner that builds its model only when it starts (FlexibleRunner) is not checked.
    """
    path, resume = getattr(runner, '_load_from', None), getattr(runner, '_resume', False)
    if resume and path is None:
        path = find_latest_checkpoint(runner.work_dir)
    model = getattr(runner, 'model', None)
    if path and isinstance(model, nn.Module) and osp.isfile(osp.expanduser(path)):
        with trust_files((getattr(runner, 'cfg', None) or {}).get('trust_checkpoints')):
            check_checkpoint_fits(model, path, 'resume from' if resume else 'load_from')
