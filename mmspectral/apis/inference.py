"""The inference API: load a tokenizer or a generator (from a config and checkpoint, or a model folder) and
use it in a few lines. Images go in and come out as uint8 arrays, PIL images or tensors.

>>> from mmspectral.apis import generate, init_generator, reconstruct, super_resolve, variations
>>> model = init_generator(generator_folder)            # a folder written by save_pretrained
>>> images = generate(model, ['disk', 'ring'], seed=0, output='numpy')
>>> images.shape, images.dtype
((2, 64, 64, 3), dtype('uint8'))
>>> coarse = reconstruct(model, images, k=[2, 16])     # uint8 arrays in, uint8 arrays out
>>> sorted(coarse), coarse[2].shape
([2, 16], (2, 64, 64, 3))
>>> len(variations(model, images[0], 'disk', keep=4, num=3, seed=0))
3
>>> super_resolve(model, images, 'disk', seed=0).shape
(2, 128, 128, 3)

``generator_folder`` is a folder of the quick start (``work_dirs/quickstart/models/generator``); the test
suite runs these lines on a tiny one (tests/test_apis/test_inference_api.py).
"""
import difflib
import fnmatch
import glob
import numbers
import os
import os.path as osp
import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn

from mmspectral.cli import add_sampling_args, sampling_options  # noqa: F401 (re-exported: apis names them)
from mmspectral.fileio import (SAME_ARCHITECTURE, load_state_dict_checked, read_state_dict, token_class_names,
                               trust_files)
from mmspectral.models.algorithms import GeneratorModel, TokenizerModel
from mmspectral.models.tokenizers.loading import load_tokenizer
from mmspectral.registry import MODELS
from .config import load_config
from .hub import is_hub_id, resolve_hub_id
from .images import OUTPUTS, from_batch, to_batch
from .pretrained import from_pretrained, inference_config, is_model_folder, read_folder_meta
from .setup_env import register_all_modules

__all__ = ['init_generator', 'init_tokenizer', 'reconstruct', 'generate', 'variations', 'super_resolve',
           'list_models', 'get_model', 'add_sampling_args', 'sampling_options']


def _check_init_args(func: str, config: Any, checkpoint: Any, device: Any, cfg_options: Any) -> torch.device:
    """Types and values of ``init_tokenizer`` / ``init_generator``'s arguments, before anything is read;
    returns the device."""
    if not isinstance(config, (str, os.PathLike)):
        raise TypeError(f'{func}: config must be the path of a config file or of a model folder (a str), got '
                        f'{type(config).__name__}.')
    if not osp.exists(config):
        raise FileNotFoundError(f'{func}: {config} does not exist; pass a config file (configs/...), a '
                                'model folder written by save_pretrained, or the hub id of one (org/name).')
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f'{func}: checkpoint must be the path of a checkpoint file (a str) or None, got '
                            f'{type(checkpoint).__name__}.')
        if not osp.isfile(checkpoint):
            what = 'is a folder' if osp.isdir(checkpoint) else 'does not exist'
            raise FileNotFoundError(f'{func}: checkpoint {checkpoint} {what}; pass the .pth file training '
                                    'wrote (or a model folder as config, with no checkpoint).')
    if cfg_options is not None and not isinstance(cfg_options, Mapping):
        raise TypeError(f'{func}: cfg_options must be a dict of config overrides such as '
                        f"{{'model.sampling.top_k': 0}}, got {type(cfg_options).__name__}.")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{func}: device must be 'cpu', 'cuda' or 'cuda:N' (a str or torch.device), got "
                         f'{device!r} ({err}).') from None
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"{func}: device {device!r} asks for a GPU, but PyTorch sees none here; use "
                         "device='cpu'.")
    return dev


def _from_hub(func: str, config: Any, checkpoint: Any, revision: Optional[str]) -> Any:
    """``config`` itself, the path of the :func:`list_models` name it is, or the local folder of the hub id
    it names (``mmspectral.apis.hub``)."""
    named = _named(config) if isinstance(config, str) and revision is None else None
    if named is not None:
        return named
    if not is_hub_id(config):
        if revision is not None:
            raise ValueError(f'{func}: revision={revision!r} is for a hub id (\'org/name\'), and '
                             f'{config!r} is a local path.')
        return config
    if checkpoint is not None:
        raise ValueError(f'{func}: {config!r} is a hub id of a model folder (its weights are inside); pass '
                         'no checkpoint.')
    folder = resolve_hub_id(config, revision)
    if not is_model_folder(folder):
        raise ValueError(f'{func}: the hub repository {config!r} is not an mmspectral model folder (no '
                         'mmspectral_model.json); publish one with tools/model_converters/publish_model.py.')
    return folder


def _folder(path: str, kind: str, checkpoint: Optional[str]):
    """The model of a model folder, checked to be of ``kind``."""
    if checkpoint is not None:
        raise ValueError(f'{path} is a model folder (its weights are inside); pass no checkpoint.')
    found = read_folder_meta(path)['kind']
    if found != kind:
        raise ValueError(f'{path} holds a {found}, not a {kind}; use init_{found}.')
    return from_pretrained(path)


def init_tokenizer(config: str, checkpoint: Optional[str] = None, device='cpu',
                   cfg_options: Optional[dict] = None,
                   trust_checkpoints: Union[str, Iterable[str], None] = None, revision: Optional[str] = None):
    """A trained tokenizer for inference (a TokenizerModel in eval mode, on ``device``): from a model folder
    or the hub id of one ('org/name', through the Hugging Face cache, at ``revision``; ``checkpoint`` None),
    or from a TokenizerModel config and the checkpoint its training wrote (EMA weights when training kept
    them). Losses, discriminators and teachers of the config are not built. Without a checkpoint the weights
    are random (a warning says so)."""
    config = _from_hub('init_tokenizer', config, checkpoint, revision)
    device = _check_init_args('init_tokenizer', config, checkpoint, device, cfg_options)
    if is_model_folder(config):
        return _folder(config, 'tokenizer', checkpoint).to(device)
    register_all_modules()
    cfg = load_config(config, cfg_options)
    model_cfg = inference_config(cfg.model) if cfg.model.get('type') == 'TokenizerModel' else None
    if model_cfg is None:
        raise ValueError(f'{config} configures a {cfg.model.get("type")!r}, not a TokenizerModel; for a '
                         'generator use init_generator.')
    if checkpoint is None:
        warnings.warn(f'init_tokenizer({config!r}) without a checkpoint: the weights are random.')
    with trust_files(trust_checkpoints), trust_files(cfg.get('trust_checkpoints')):
        tokenizer = load_tokenizer(model_cfg['tokenizer'], checkpoint)  # names and shapes checked
    model = MODELS.build(dict(model_cfg, tokenizer=tokenizer))
    model.pretrained_config = model_cfg
    model.class_names = _class_names(cfg)
    return model.eval().to(device)


def init_generator(config: str, checkpoint: Optional[str] = None, device='cpu',
                   cfg_options: Optional[dict] = None,
                   trust_checkpoints: Union[str, Iterable[str], None] = None, revision: Optional[str] = None):
    """Build the GeneratorModel of ``config`` (with its tokenizer) and load ``checkpoint`` strictly;
    eval mode, on ``device``. ``config`` may also be a model folder (``checkpoint`` None): the generator and
    its tokenizer are in it; or the hub id of one ('org/name', resolved through the Hugging Face cache at
    ``revision``; ``HF_HUB_OFFLINE=1`` uses the cache alone).

    Every parameter of the generator must be in the checkpoint with its shape, and the checkpoint may hold
    nothing else: a checkpoint of another model (a tokenizer's, say) is refused, never sampled from at random.
    The tokenizer's own weights come from ``model.tokenizer_checkpoint`` of the config when the generator
    checkpoint does not hold them. ``model.class_names`` is set from the training tokens' meta file when it
    can be read (else empty). ``trust_checkpoints``: files to load with full unpickling (which runs any code
    they carry), on top of the config's ``trust_checkpoints``.
    """
    config = _from_hub('init_generator', config, checkpoint, revision)
    device = _check_init_args('init_generator', config, checkpoint, device, cfg_options)
    if is_model_folder(config):
        return _folder(config, 'generator', checkpoint).to(device)
    if checkpoint is None:
        raise ValueError(f'init_generator({config!r}) needs the checkpoint training wrote '
                         '(or a model folder).')
    register_all_modules()
    cfg = load_config(config, cfg_options)
    if cfg.model.get('type') != 'GeneratorModel' or cfg.model.get('tokenizer') is None:
        raise ValueError(f'{config} must configure a GeneratorModel with its tokenizer (to decode images); '
                         f'it has model.type={cfg.model.get("type")!r}.')
    with trust_files(trust_checkpoints), trust_files(cfg.get('trust_checkpoints')):
        state = read_state_dict(checkpoint)  # first: a bad file costs no model building
        model = MODELS.build(cfg.model)
    # a model wrapped in DDP saves 'module.' names
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    load_state_dict_checked(model, state, checkpoint, f'the generator of {osp.basename(config)}',
                            f'{SAME_ARCHITECTURE} Pass a checkpoint written by training this config (a '
                            'GeneratorModel), not the tokenizer\'s.', noun='checkpoint')
    model.class_names = model.class_names or _class_names(cfg)
    model.pretrained_config = cfg.model.to_dict()
    return model.eval().to(device)


def _class_names(cfg) -> tuple:
    """The class names recorded with the generator's training tokens (tools/extract_tokens.py),
    if readable."""
    return token_class_names(cfg.get('train_dataloader', {}).get('dataset', {}).get('data_root'))


# ---------------------------------------------------------------------------------------------- applications
def _what(obj: Any) -> str:
    text = repr(obj)
    return f'{type(obj).__name__} {text[:60] + "..." if len(text) > 60 else text}'


def _codec(model, func: str):
    """The tokenizer network of a model loaded with init_tokenizer or init_generator (its ``codec``)."""
    if not isinstance(model, nn.Module) or not hasattr(type(model), 'codec'):
        raise TypeError(f'{func} needs a model loaded with init_tokenizer or init_generator (a '
                        f'TokenizerModel or a GeneratorModel), got {_what(model)}; load it first: '
                        'model = init_tokenizer(path).')
    try:
        return model.codec
    except RuntimeError:
        raise ValueError(f'{type(model).__name__} has no tokenizer to encode or decode images.') from None


SUPER_RESOLVE_MODES = ('stride', 'patch', 'bicubic')


def _device(model) -> torch.device:
    return next(iter(model.parameters())).device


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _generator_model(model, func: str) -> GeneratorModel:
    """``model`` if it is a GeneratorModel, else a TypeError that says what to pass."""
    if isinstance(model, GeneratorModel):
        return model
    hint = (' A tokenizer encodes and decodes images (reconstruct); drawing new ones needs the generator: '
            'model = init_generator(path).' if isinstance(model, TokenizerModel) else
            ' Load one first: model = init_generator(path).')
    raise TypeError(f'{func} needs a generator (a GeneratorModel from init_generator), got {_what(model)}.'
                    + hint)


def _check_common(func: str, seed: Any, output: Any) -> None:
    """``seed`` None or an integer >= 0; ``output`` None or one of OUTPUTS."""
    if seed is not None and not (_is_int(seed) and seed >= 0):
        raise (ValueError if _is_int(seed) else TypeError)(
            f'{func}: seed must be an integer >= 0 (or None for a random draw), got {_what(seed)}.')
    if output is not None and output not in OUTPUTS:
        raise ValueError(f'{func}: output must be one of {OUTPUTS} (or None: the input\'s kind), got '
                         f'{output!r}.')


def _labels(model, classes: Union[int, str, Sequence[Union[int, str]]]) -> torch.Tensor:
    """Class indices from indices or names (``model.class_names``)."""
    if isinstance(classes, torch.Tensor) or type(classes).__module__ == 'numpy':
        classes = classes.tolist()  # an index tensor or array: its values (a 0-d one: one index)
    items = [classes] if isinstance(classes, (numbers.Number, str)) else classes
    if not isinstance(items, (list, tuple, range)):
        raise TypeError(f'classes must be a class index (int), a class name (str) or a list of them, got '
                        f'{_what(classes)}.')
    names = list(getattr(model, 'class_names', ()) or ())
    num = model.gen.num_classes
    out = []
    for c in items:
        if isinstance(c, str):
            if c not in names:
                raise ValueError(f'Unknown class {c!r}; this generator knows {names or "no class names"} '
                                 f'(or pass indices 0..{num - 1}).')
            c = names.index(c)
        if not _is_int(c):
            raise TypeError(f'classes: {c!r} is a {type(c).__name__}; pass class indices (int, 0..{num - 1}) '
                            'or class names (str).')
        if not 0 <= c < num:
            raise ValueError(f'Class {c} is outside the generator\'s {num} classes (indices 0..{num - 1}; '
                             f'{num} is the guidance null class, not a class).')
        out.append(int(c))
    if not out:
        raise ValueError('Pass at least one class.')
    return torch.tensor(out, device=_device(model))


@torch.no_grad()
def reconstruct(model, images: Any, k: Union[None, int, Sequence[int]] = None, output: Optional[str] = None):
    """The tokenizer's reconstruction of ``images`` from their first ``k`` tokens.

    ``model``: a TokenizerModel (``init_tokenizer``) or a GeneratorModel (its tokenizer is used). ``k``: one
    prefix length (default all N tokens) or several; images of another size are resized and centre-cropped
    to the tokenizer's. Returns images of the input's kind (or ``output``: 'tensor', 'numpy', 'pil'); for a
    list of ``k``, a dict ``k -> images``.
    """
    tok = _codec(model, 'reconstruct')
    _check_common('reconstruct', None, output)
    if k is None or _is_int(k):
        lengths = [tok.num_tokens if k is None else k]
    elif isinstance(k, (list, tuple, range)) and len(k) and all(_is_int(n) for n in k):
        lengths = list(k)
    else:
        raise TypeError(f'reconstruct: k must be a prefix length (int), a non-empty list of them, or None '
                        f'(all {tok.num_tokens} tokens), got {_what(k)}.')
    bad = [n for n in lengths if not 1 <= int(n) <= tok.num_tokens]
    if bad:
        raise ValueError(f'Prefix lengths must lie in [1, {tok.num_tokens}], got {bad}.')
    batch, kind, single = to_batch(images, tok.image_size)
    batch = batch.to(_device(model))
    out = {}
    for n in lengths:
        decoded = tok.decode_images(tok.encode_images(batch, int(n)), clamp=False)
        out[int(n)] = from_batch(decoded, output or kind, single)
    return out[lengths[0]] if k is None or _is_int(k) else out


@torch.no_grad()
def generate(model, classes, num_tokens: Optional[int] = None, seed: Optional[int] = None,
             output: str = 'tensor', **sampling):
    """Class-conditional samples: one image per entry of ``classes`` (indices or names).

    ``num_tokens``: truncated generation (the first n tokens, decoded; the full run's prefix for the same
    seed); ``seed`` makes the result repeatable; ``sampling`` overrides the config's settings (``cfg_scale``,
    ``top_k``, ``top_p``, ``temperature``, ``cfg_schedule``). ``output``: 'tensor' (B, 3, H, W) in [0, 1],
    'numpy' (uint8 (B, H, W, 3)) or 'pil' (a list of images).
    """
    _generator_model(model, 'generate')
    _check_common('generate', seed, output)
    labels = _labels(model, classes)
    if num_tokens is not None:
        sampling['num_tokens'] = num_tokens
    model.sampling_options(sampling, 'generate')
    images = model.sample(labels, seed=seed, **sampling)['images']
    return from_batch(images, output)


def _images_and_labels(model, tok, images: Any, classes) -> tuple:
    """``(batch, labels, kind, single)``: the images as a batch of the tokenizer's size, and one label per
    image (one class given for several images is repeated)."""
    labels = _labels(model, classes)
    batch, kind, single = to_batch(images, tok.image_size)
    if len(labels) == 1 and len(batch) > 1:
        labels = labels.repeat(len(batch))
    if len(labels) != len(batch):
        raise ValueError(f'Pass one class, or one per image: {len(labels)} classes for {len(batch)} images.')
    return batch, labels, kind, single


@torch.no_grad()
def variations(model, images: Any, classes, keep: int, num: int = 4, seed: Optional[int] = None,
               output: Optional[str] = None, **sampling):
    """Spectral variations: keep the first ``keep`` tokens of each image (its coarse content) and let the
    generator draw the rest ``num`` times for the class. Returns a list (one entry per input image) of
    ``num`` images of the input's kind (or ``output``)."""
    tok = _codec(_generator_model(model, 'variations'), 'variations')
    _check_common('variations', seed, output)
    if not _is_int(keep) or not 1 <= keep < tok.num_tokens:
        raise (ValueError if _is_int(keep) else TypeError)(
            f'keep must lie in [1, {tok.num_tokens - 1}] (an integer; the rest is generated), '
            f'got {_what(keep)}.')
    if not _is_int(num) or num < 1:
        raise (ValueError if _is_int(num) else TypeError)(
            f'variations: num (variations per image) must be an integer >= 1, got {_what(num)}.')
    model.sampling_options(sampling, 'variations')
    batch, labels, kind, single = _images_and_labels(model, tok, images, classes)
    out = model.variations(batch.to(_device(model)), labels, keep=keep, num=num, seed=seed,
                           **sampling)  # (B, num, 3, H, W)
    result = [from_batch(v, output or kind) for v in out]
    return result[0] if single else result


@torch.no_grad()
def super_resolve(model, images: Any, classes, mode: str = 'stride', seed: Optional[int] = None,
                  output: Optional[str] = None, **sampling):
    """Twice the resolution by spectral completion (paper section 4.4; ``mode`` 'stride' or 'patch') or
    plain bicubic up-sampling ('bicubic'). Images of the tokenizer's size in, 2x images out, of the input's
    kind (or ``output``). The sub-images are up-sampled on the 2x image's pixel grid
    (``GeneratorModel.super_resolve``, ``mmspectral.spectral.subimages``)."""
    tok = _codec(_generator_model(model, 'super_resolve'), 'super_resolve')
    _check_common('super_resolve', seed, output)
    if mode not in SUPER_RESOLVE_MODES:
        raise ValueError(f'super_resolve: mode must be one of {SUPER_RESOLVE_MODES}, got {mode!r}.')
    model.sampling_options(sampling, 'super_resolve')
    batch, labels, kind, single = _images_and_labels(model, tok, images, classes)
    out = model.super_resolve(batch.to(_device(model)), labels, mode=mode, seed=seed, **sampling)
    return from_batch(out, output or kind, single)


#: the source checkout's root (configs/ and work_dirs/ are found from here, not from the current directory)
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def list_models(pattern: Optional[str] = None, roots: Optional[Sequence[str]] = None,
                config_dir: Optional[str] = None) -> List[Dict[str, str]]:
    """The models mmspectral knows: its configs (``kind`` 'tokenizer' / 'generator', ``source`` 'config', the
    config's file name as ``name``) and the model folders under ``roots`` (``source`` 'folder', searched three
    levels deep, named by their path below the root, e.g. ``quickstart/models/generator``). Every ``name``
    loads with :func:`get_model` (and ``init_tokenizer`` / ``init_generator``).

    ``pattern``: keep the names that match it (shell wildcards: ``'*tiny*'``). ``roots``: folders to search
    (default the checkout's ``work_dirs/``, wherever Python runs from); one folder may be a str.
    ``config_dir``: default the checkout's ``configs/``."""
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError(f'list_models: pattern must be a str such as \'*tiny*\' (or None), got '
                        f'{_what(pattern)}.')
    roots = [osp.join(REPO_ROOT, 'work_dirs')] if roots is None else roots
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else roots
    if not isinstance(roots, (list, tuple)) or not all(isinstance(r, (str, os.PathLike)) for r in roots):
        raise TypeError(f'list_models: roots must be a folder or a list of folders, got {_what(roots)}.')
    if config_dir is not None and not osp.isdir(config_dir):
        raise FileNotFoundError(f'list_models: config_dir {config_dir} is not a folder.')
    register_all_modules()
    config_dir = config_dir or osp.join(REPO_ROOT, 'configs')
    found = []
    for path in sorted(glob.glob(osp.join(config_dir, '**', '*.py'), recursive=True)):
        if f'{osp.sep}_base_{osp.sep}' in path:
            continue
        name = osp.splitext(osp.basename(path))[0]
        if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
            continue
        kind = {'TokenizerModel': 'tokenizer', 'GeneratorModel': 'generator'}.get(
            load_config(path).model.get('type'))
        if kind:
            found.append(dict(name=name, kind=kind, source='config', path=path))
    for root in roots:
        for depth in range(4):
            for meta in sorted(glob.glob(osp.join(root, *(['*'] * depth), 'mmspectral_model.json'))):
                folder = osp.dirname(meta)
                name = osp.relpath(folder, root).replace(osp.sep, '/')
                if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
                    continue
                try:
                    kind = read_folder_meta(folder)['kind']
                except (OSError, ValueError):
                    continue  # not one this version reads; listing the rest matters more
                found.append(dict(name=name, kind=kind, source='folder', path=folder))
    return found


def get_model(name: str, checkpoint: Optional[str] = None, device='cpu',
              roots: Optional[Sequence[str]] = None, **kwargs):
    """The model a :func:`list_models` name (or a path, or a hub id) stands for, loaded with
    ``init_tokenizer`` / ``init_generator`` (which it is, from the folder or the config). A config name
    needs ``checkpoint`` for a generator (a tokenizer without one has random weights, with a warning).
    ``roots``: where :func:`list_models` looks for model folders."""
    if not isinstance(name, str):
        raise TypeError(f'get_model: name must be a str (a list_models name, a path or a hub id), got '
                        f'{_what(name)}.')
    path = _named(name, roots)
    if path is None:
        if is_hub_id(name):
            path = _from_hub('get_model', name, checkpoint, kwargs.pop('revision', None))
        elif osp.exists(name):
            path = name
        else:
            close = difflib.get_close_matches(name, [m['name'] for m in list_models(roots=roots)], n=3)
            raise FileNotFoundError(f'get_model: no model named {name!r}' + (
                f'; did you mean {", ".join(repr(c) for c in close)}?' if close else
                '; list_models() shows the names, or pass a path or a hub id (org/name).'))
    if is_model_folder(path):
        kind = read_folder_meta(path)['kind']
    else:
        register_all_modules()
        kind = {'TokenizerModel': 'tokenizer', 'GeneratorModel': 'generator'}.get(
            load_config(path).model.get('type'))
        if kind is None:
            raise ValueError(f'get_model: {path} configures neither a tokenizer nor a generator.')
    init = init_tokenizer if kind == 'tokenizer' else init_generator
    return init(path, checkpoint, device, **kwargs)


def _named(name: str, roots: Optional[Sequence[str]] = None) -> Optional[str]:
    """The path of a :func:`list_models` name that is no existing path, or None."""
    if (osp.exists(name) or not name or osp.isabs(name) or any(c in name for c in '*?[')
            or name.endswith(('.py', '.pth', '.pt', '.json', '.safetensors'))):
        return None
    matches = list_models(name, roots)
    return matches[0]['path'] if matches else None
