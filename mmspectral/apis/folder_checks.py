"""What is checked of a model folder before anything of it is built: a folder is data, whoever made it.

Loading a folder (:func:`mmspectral.apis.from_pretrained`) runs no code of the folder's and cannot be made to
allocate more than its weights hold:

1. the folder's entries: regular files only (no symbolic links, folders or devices), each of them recorded in
   ``mmspectral_model.json`` with its sha256, and every recorded file present with that hash
   (:func:`check_folder_files`);
2. ``config.json`` is read with :mod:`json` as plain data (:func:`read_folder_config`): MMEngine's config
   machinery is never involved, so ``_base_`` (which reads and runs another file), ``custom_imports`` (which
   imports modules), ``_scope_``, ``_delete_`` and ``{{ }}`` substitutions are refused rather than followed;
   every ``type`` must be a component registered in mmspectral's model registries; paths to external weights
   (``pretrained``, ``*_checkpoint``, ``init_cfg``, ``*_path``) are refused; numbers must be finite and within
   sane bounds;
3. the architecture the config declares is compared with the weights' shapes, read from the safetensors header
   alone (:func:`check_config_fits_weights`): counts of repeated modules (``depth``) may not exceed the number
   of tensors in the file, then the model is built on PyTorch's ``meta`` device (shapes without storage) and
   every parameter and persistent buffer must be in the file with its shape.

Only then are the weights read and the model built for real.
"""
import copy
import difflib
import json
import math
import os
import os.path as osp
import stat
import warnings
from typing import Any, Dict, Iterator, Mapping, Tuple

import torch

from mmspectral.cli import MODEL_FOLDER_RECORD  # the name the tools check before torch loads
from mmspectral.fileio import SafetensorsError, diff_state_dict, sha256_of_file
from mmspectral.registry import ATTN_MASKS, FREQ_SCHEDULES, GENERATORS, MODELS, QUANTIZERS, TOKENIZERS

__all__ = ['ModelFolderError', 'MODEL_FOLDER_RECORD',
           'check_folder_files', 'read_folder_config', 'check_config_fits_weights',
           'read_json_data', 'KEEP_KEYS']

CONFIG_FILE, WEIGHTS_FILE = 'config.json', 'model.safetensors'
#: The record of a model folder (kind, sizes, classes, the sha256 of every other file); ``META_FILE`` is its
#: earlier name.
CARD_FILE = 'README.md'
META_FILE = MODEL_FOLDER_RECORD

#: The top-level keys a folder's config may hold, by kind: what inference needs (``inference_config``).
KEEP_KEYS = {'tokenizer': ('type', 'tokenizer', 'data_preprocessor', 'eval_prefix_lengths', 'recipe'),
             'generator': ('type', 'generator', 'tokenizer', 'sampling', 'image_value_range',
                           'num_position_bins', 'class_names')}
#: Keys that make MMEngine read files, import modules or switch registries; a folder's config is plain data.
CODE_KEYS = ('_base_', 'custom_imports', '_scope_', '_delete_')
#: Keys that name weights outside the folder (the folder's own weights replace them); the suffixes count for
#: string values (``drop_path`` is a rate).
EXTERNAL_KEYS = ('pretrained', 'init_cfg', 'load_from')
EXTERNAL_SUFFIXES = ('checkpoint', '_path', '_file', '_dir', '_root')
#: Keys that count repeated modules: each repetition holds at least one tensor of the weights file.
COUNT_KEYS = ('depth', 'num_layers', 'num_blocks', 'num_res_blocks', 'convs_per_stage')
#: Sane bounds, whatever the weights say.
MAX_INT = 2 ** 24
MAX_IMAGE_SIZE = 8192
MAX_LIST = 4096
MAX_NESTING = 32
MAX_JSON_BYTES = 1 << 20
MAX_META_BYTES = 16 << 20
REGISTRIES = (MODELS, TOKENIZERS, QUANTIZERS, FREQ_SCHEDULES, ATTN_MASKS, GENERATORS)

REPUBLISH = ('Publish the model again from its checkpoint (tools/model_converters/publish_model.py), or '
             'save it again with mmspectral.apis.save_pretrained.')


class ModelFolderError(ValueError):
    """A model folder that is refused; the message names the file, what was wrong and what to do."""


def _regular_file(path: str) -> None:
    """Refuse a symbolic link or anything but a regular file, naming it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise ModelFolderError(f'{path} is missing: a model folder holds {CONFIG_FILE}, {WEIGHTS_FILE}, '
                               f'{MODEL_FOLDER_RECORD} and {CARD_FILE}. {REPUBLISH}') from None
    if stat.S_ISLNK(mode):
        raise ModelFolderError(f'{path} is a symbolic link (to {os.readlink(path)}); a model folder holds '
                               'its files themselves, so that their hashes cover what is loaded. Copy the '
                               'file in place of the link (cp -L) and load again.')
    if not stat.S_ISREG(mode):
        raise ModelFolderError(f'{path} is not a regular file (it is a folder, a device or a pipe); a model '
                               f'folder holds only {CONFIG_FILE}, {WEIGHTS_FILE}, {MODEL_FOLDER_RECORD} and '
                               f'{CARD_FILE}. Move it out of the folder.')


def read_json_data(path: str, what: str, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON file ``path`` as plain data (dicts, lists, strings, finite numbers, booleans, null)."""
    _regular_file(path)
    size = osp.getsize(path)
    if size > limit:
        raise ModelFolderError(f'{path} is {size} bytes; {what} is at most {limit} bytes (save_pretrained '
                               f'writes a few kilobytes). {REPUBLISH}')

    def no_constant(name: str) -> None:
        raise ModelFolderError(f'{path} holds {name}, which is not a number JSON allows; {what} holds finite '
                               f'numbers only. {REPUBLISH}')

    with open(path, 'rb') as f:
        raw = f.read()
    try:
        return json.loads(raw.decode('utf-8'), parse_constant=no_constant)
    except UnicodeDecodeError as err:
        raise ModelFolderError(f'{path} is not UTF-8 text ({err}); {what} is a JSON file. '
                               f'{REPUBLISH}') from err
    except json.JSONDecodeError as err:
        raise ModelFolderError(f'{path} is not valid JSON ({err}); {what} is a JSON file written by '
                               f'save_pretrained. {REPUBLISH}') from err
    except RecursionError:
        raise ModelFolderError(f'{path} nests its values too deeply to read; {what} nests a few levels. '
                               f'{REPUBLISH}') from None


def check_folder_files(folder: str, meta: Mapping[str, Any], verify: bool = True) -> None:
    """Refuse links, odd entries and files the folder's record does not cover; with ``verify``, compare every
    file's sha256 with the record.

    A folder written before the record covered every file (it holds ``weights_sha256`` only) loads with a
    warning: its weights are verified, its config is checked as data but not against a hash.
    """
    recorded = meta.get('files_sha256')
    if recorded is not None and not (isinstance(recorded, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in recorded.items())):
        raise ModelFolderError(f'{osp.join(folder, MODEL_FOLDER_RECORD)}: files_sha256 must map file names '
                               f'to sha256 strings. {REPUBLISH}')
    names = dict(recorded) if recorded is not None else {WEIGHTS_FILE: meta.get('weights_sha256')}
    expected = {CONFIG_FILE, WEIGHTS_FILE, CARD_FILE} if recorded is not None else {CONFIG_FILE, WEIGHTS_FILE}
    for name in sorted(expected | set(names)):
        if osp.basename(name) != name or name in ('', '.', '..', MODEL_FOLDER_RECORD):
            raise ModelFolderError(f'{osp.join(folder, MODEL_FOLDER_RECORD)} records {name!r}, which is not '
                                   f'a file of the folder itself. {REPUBLISH}')
        _regular_file(osp.join(folder, name))
    if recorded is not None:
        extra = sorted(set(os.listdir(folder)) - set(names) - {MODEL_FOLDER_RECORD})
        if extra:
            raise ModelFolderError(
                f'{folder} holds {extra}, which its {MODEL_FOLDER_RECORD} does not record: every file of a '
                f'model folder is covered by a recorded sha256. Remove them (a model folder holds '
                f'{CONFIG_FILE}, {WEIGHTS_FILE}, {CARD_FILE} and {MODEL_FOLDER_RECORD}), or publish the '
                'folder again.')
    if not verify:
        return
    for name, sha in sorted(names.items()):
        path = osp.join(folder, name)
        if sha256_of_file(path) != sha:
            error = SafetensorsError if name == WEIGHTS_FILE else ModelFolderError
            raise error(f'{path} does not match the sha256 recorded in {MODEL_FOLDER_RECORD}: the file was '
                        f'changed or cut short after the folder was written. {REPUBLISH} (A folder you '
                        'edited on purpose must be saved again: from_pretrained(folder, verify=False), then '
                        'save_pretrained.)')
    if recorded is None:
        warnings.warn(f'{folder} was written before model folders recorded the sha256 of every file: only '
                      f'{WEIGHTS_FILE} is verified; {CONFIG_FILE} is checked as data, not against a hash. '
                      f'{REPUBLISH}')


def _walk(obj: Any, where: str = '', depth: int = 0) -> Iterator[Tuple[str, Any, Any]]:
    """``(where, key, value)`` for every entry of nested dicts and lists (``key`` None for list items)."""
    if depth > MAX_NESTING:
        raise ModelFolderError(f'{CONFIG_FILE} nests deeper than {MAX_NESTING} levels at {where}; a model\'s '
                               f'config nests a few. {REPUBLISH}')
    if isinstance(obj, dict):
        for key, value in obj.items():
            here = f'{where}.{key}' if where else str(key)
            yield here, key, value
            yield from _walk(value, here, depth + 1)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            here = f'{where}[{i}]'
            yield here, None, value
            yield from _walk(value, here, depth + 1)


def registered_types() -> set:
    """Every ``type`` a model folder may build: the classes of mmspectral's model registries (with MMEngine's
    own models, such as ``BaseDataPreprocessor``)."""
    names = set()
    for registry in REGISTRIES:
        while registry is not None:
            names.update(registry.module_dict)
            registry = registry.parent
    return names


def read_folder_config(folder: str, kind: str) -> Dict[str, Any]:
    """The folder's ``config.json`` as a plain dict, after every check of step 2 (module docstring)."""
    path = osp.join(folder, CONFIG_FILE)
    cfg = read_json_data(path, 'a model folder\'s config')
    if not isinstance(cfg, dict):
        raise ModelFolderError(f'{path} holds a {type(cfg).__name__}, not a config (a JSON object). '
                               f'{REPUBLISH}')
    known = None
    for where, key, value in _walk(cfg):
        if key in CODE_KEYS:
            raise ModelFolderError(
                f'{path}: the key {key!r} (at {where}) is MMEngine config machinery, which reads other '
                'files, imports modules or changes what is built. A model folder\'s config.json is plain '
                'data, read with json: _base_, custom_imports, _scope_ and _delete_ are refused, never '
                f'followed. {REPUBLISH}')
        for text in ((key, value) if isinstance(value, str) else (key,)):
            if isinstance(text, str) and '{{' in text:
                raise ModelFolderError(
                    f'{path}: {text!r} (at {where}) holds "{{{{", an MMEngine substitution (such as '
                    '{{$HOME}}, {{fileDirname}} or {{_base_.x}}); config.json is plain data and its values '
                    f'are taken as written, so substitutions are refused. Write the value out. {REPUBLISH}')
        if (key in EXTERNAL_KEYS and value is not None) or (
                isinstance(key, str) and key.endswith(EXTERNAL_SUFFIXES) and isinstance(value, str)):
            raise ModelFolderError(
                f'{path}: {where}={value!r} names something outside the folder; a model folder loads its '
                f'weights from its own {WEIGHTS_FILE} only and never follows such a path. Set it to null '
                f'(save_pretrained writes null there). {REPUBLISH}')
        if key == 'type':
            known = registered_types() if known is None else known
            if not isinstance(value, str) or value not in known:
                close = difflib.get_close_matches(str(value), sorted(known), n=3, cutoff=0.6)
                hint = f' (did you mean {", ".join(map(repr, close))}?)' if close else ''
                raise ModelFolderError(
                    f'{path}: type={value!r} (at {where}) is not a component registered in mmspectral\'s '
                    f'model registries{hint}. A model folder builds registered types only and imports '
                    'nothing (custom_imports is refused); for a component of your own, load its .py config '
                    'and checkpoint with init_tokenizer / init_generator.')
        _check_value(path, where, key, value)
    model_type = {'tokenizer': 'TokenizerModel', 'generator': 'GeneratorModel'}[kind]
    if cfg.get('type') != model_type:
        raise ModelFolderError(f'{path} configures type={cfg.get("type")!r}, but {MODEL_FOLDER_RECORD} says '
                               f'the folder holds a {kind} ({model_type}). {REPUBLISH}')
    extra = sorted(str(k) for k in cfg if k not in KEEP_KEYS[kind])
    if extra:
        raise ModelFolderError(f'{path} holds the keys {extra}; a {kind} folder\'s config holds only what '
                               f'inference needs: {list(KEEP_KEYS[kind])}. {REPUBLISH}')
    return cfg


def _check_value(path: str, where: str, key: Any, value: Any) -> None:
    """Sane bounds on one value, whatever the weights say."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ModelFolderError(f'{path}: {where} is {value}; a config holds finite numbers. {REPUBLISH}')
    if isinstance(value, int) and not isinstance(value, bool):
        limit = MAX_IMAGE_SIZE if key == 'image_size' else MAX_INT
        if abs(value) > limit:
            raise ModelFolderError(f'{path}: {where}={value} is beyond any model this mmspectral builds (at '
                                   f'most {limit}); the config was changed after the folder was written. '
                                   f'{REPUBLISH}')
    if isinstance(value, list) and len(value) > MAX_LIST:
        raise ModelFolderError(f'{path}: {where} is a list of {len(value)} items (at most {MAX_LIST}). '
                               f'{REPUBLISH}')


def check_config_fits_weights(cfg: Mapping[str, Any], shapes: Mapping[str, Tuple[int, ...]], config: str,
                              weights: str, expected_tensors) -> None:
    """Refuse a config whose architecture is not the one of the weights, before anything is allocated.

    Args:
        cfg: the folder's config (:func:`read_folder_config`).
        shapes: name -> shape of every tensor of the weights file (its header).
        config, weights: the two files, as the messages name them.
        expected_tensors: a function of the model built on the meta device that returns name -> tensor as the
            weights file names them.
    """
    count = len(shapes)
    for where, key, value in _walk(cfg):
        if key in COUNT_KEYS and isinstance(value, int) and value > count:
            raise ModelFolderError(
                f'{config}: {where}={value} would build more repeated layers than {weights} holds tensors '
                f'({count}); the config does not describe these weights (it was changed after the folder was '
                f'written). {REPUBLISH}')
    try:
        with torch.device('meta'):  # shapes without storage: nothing of the declared sizes is allocated
            model = MODELS.build(copy.deepcopy(dict(cfg)))
    except (ValueError, TypeError, KeyError) as err:
        raise ModelFolderError(f'{config} does not describe a model that can be built ({err}); a folder '
                               'written by save_pretrained always does, so it was changed after it was '
                               f'written. {REPUBLISH}') from err
    stored = {name: torch.empty(shape, device='meta') for name, shape in shapes.items()}
    diff = diff_state_dict(expected_tensors(model), stored)
    if diff:
        raise ModelFolderError(f'{config} does not describe the weights in {weights}: '
                               f'{diff.describe("weights file")}. The config was changed after the folder '
                               f'was written, or the two files come from different models. {REPUBLISH}')
