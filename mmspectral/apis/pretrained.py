"""Model folders: a trained tokenizer or generator as files that anyone can share and load without pickles.

A folder holds

==========================  ==================================================================================
``config.json``             the model's config for inference, as JSON data: loading it runs no code
``model.safetensors``       the weights (a generator folder holds its tokenizer's too: the pair)
``mmspectral_model.json``   what the folder is: its kind, the sha256 of every other file, class names, metrics
``README.md``               the model card: what it is, data, steps, measured metrics, how to reproduce
==========================  ==================================================================================

``save_pretrained(model, folder)`` writes one, ``from_pretrained(folder)`` builds the model back (eval mode)
after the checks of :mod:`.folder_checks`: every file against its recorded sha256, the config as plain data
(no ``_base_``, ``custom_imports`` or substitutions; registered types only; no external paths), and the
declared architecture against the weights' shapes before anything is built. Paths to external weights in the
config (a tokenizer checkpoint, a VQGAN's ``pretrained`` file) are dropped when saving: the folder's own
weights replace them.
"""
import copy
import datetime
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from mmspectral.fileio import (SafetensorsError, load_safetensors, load_state_dict_checked,
                               read_safetensors_shapes, save_safetensors, sha256_of_file, write_json)
from mmspectral.models.tokenizers.loading import settle_value_range
from mmspectral.models.utils import persistent_tensors
from mmspectral.registry import MODELS
from mmspectral.version import __version__
from .folder_checks import (CARD_FILE, CONFIG_FILE, KEEP_KEYS, MAX_META_BYTES, META_FILE, MODEL_FOLDER_RECORD,
                            WEIGHTS_FILE, ModelFolderError, check_config_fits_weights, check_folder_files,
                            read_folder_config, read_json_data)
from .setup_env import register_all_modules

__all__ = ['save_pretrained', 'from_pretrained', 'is_model_folder', 'read_folder_meta', 'inference_config',
           'CONFIG_FILE', 'WEIGHTS_FILE', 'MODEL_FOLDER_RECORD', 'META_FILE', 'CARD_FILE', 'FOLDER_FORMAT',
           'ModelFolderError']

FOLDER_FORMAT = 1
KINDS = {'TokenizerModel': 'tokenizer', 'GeneratorModel': 'generator'}


def is_model_folder(path: str) -> bool:
    """Whether ``path`` is a folder written by :func:`save_pretrained` (one whose record is a link or no file
    counts too, so that loading it says what is wrong with it)."""
    return osp.isdir(path) and osp.lexists(osp.join(path, MODEL_FOLDER_RECORD))


def read_folder_meta(folder: str) -> Dict[str, Any]:
    """The folder's ``mmspectral_model.json``, checked for a format this version reads."""
    path = osp.join(folder, MODEL_FOLDER_RECORD)
    if not osp.lexists(path):
        raise FileNotFoundError(f'{folder} is not a model folder: it has no {MODEL_FOLDER_RECORD}. Make one '
                                'with mmspectral.apis.save_pretrained or '
                                'tools/model_converters/publish_model.py.')
    meta = read_json_data(path, 'a model folder\'s record', limit=MAX_META_BYTES)
    if not isinstance(meta, dict):
        raise ModelFolderError(f'{path} holds a {type(meta).__name__}, not a record (a JSON object); write '
                               'the folder again.')
    if meta.get('format') != FOLDER_FORMAT or meta.get('kind') not in KINDS.values():
        raise ValueError(f'{path} has format {meta.get("format")!r} and kind {meta.get("kind")!r}; this '
                         f'mmspectral ({__version__}) reads format {FOLDER_FORMAT}, '
                         f'kinds {sorted(KINDS.values())}.')
    return meta


def _without_external_weights(cfg: Any) -> Any:
    """A copy of a config with every ``pretrained`` path dropped (VQGANs then build with random weights,
    which the folder's own weights overwrite)."""
    if isinstance(cfg, Mapping):
        out = {k: _without_external_weights(v) for k, v in cfg.items()}
        if 'pretrained' in out and out['pretrained'] is not None:
            out['pretrained'] = None
            if out.get('type') == 'MaskGITVQGAN':
                out['allow_random_init'] = True
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_without_external_weights(v) for v in cfg)
    return copy.deepcopy(cfg)


def inference_config(model_cfg: Mapping) -> Dict[str, Any]:
    """What inference needs of a TokenizerModel / GeneratorModel config, as a plain dict: no losses, teachers
    or checkpoint paths (a tokenizer: its network and value range; a generator: its network, tokenizer,
    sampling settings and value range)."""
    cfg = settle_value_range(model_cfg)  # the tokenizer carries the value range, whatever the config's age
    kind = KINDS.get(cfg.get('type'))
    if kind is None:
        raise ValueError('A model folder holds a TokenizerModel or a GeneratorModel, '
                         f'not {cfg.get("type")!r}.')
    if kind == 'tokenizer':
        out = {k: cfg[k] for k in KEEP_KEYS['tokenizer'] if k in cfg}
        tok = out['tokenizer']
        if tok.get('decoder_head') == 'proxy_codes' and not tok.get('pixel_decoder'):
            raise ValueError('This tokenizer predicts proxy codes and has no pixel_decoder to turn them into '
                             'images; save the stage-2 tokenizer (with its pixel decoder) instead.')
        out['recipe'] = 'pixel'
    else:
        if cfg.get('tokenizer') is None:
            raise ValueError('A generator folder holds the generator with its tokenizer (to decode images); '
                             'this GeneratorModel config has no tokenizer.')
        out = {k: cfg[k] for k in KEEP_KEYS['generator'] if k in cfg}
    return _without_external_weights(out)


def _weights(model: nn.Module, kind: str) -> Dict[str, torch.Tensor]:
    if kind == 'tokenizer':
        return {f'tokenizer.{k}': v for k, v in persistent_tensors(model.tok).items()}
    if model.tokenizer is None:
        raise ValueError('This GeneratorModel has no tokenizer; a generator folder holds both (the pair).')
    own = {f'generator.{k}': v for k, v in persistent_tensors(model.gen).items()}
    own.update({f'tokenizer.{k}': v for k, v in persistent_tensors(model.tokenizer).items()})
    return own


def save_pretrained(model: nn.Module, folder: str, config: Optional[Mapping] = None, *,
                    class_names: Optional[Sequence[str]] = None, card: Optional[Mapping[str, Any]] = None,
                    overwrite: bool = False) -> str:
    """Write ``model`` (a TokenizerModel, or a GeneratorModel with its tokenizer) as a model folder.

    Args:
        model: the trained model; its weights as they are now (load the EMA weights first where training
            kept them: a Runner checkpoint's ``state_dict`` already holds them).
        folder: where to write (created). An existing model folder is replaced only with ``overwrite``.
        config: the model's config (``cfg.model``); default ``model.pretrained_config``, which
            ``init_tokenizer`` / ``init_generator`` / ``from_pretrained`` set.
        class_names: the classes a generator draws (default ``model.class_names``).
        card: what the model card says: ``title``, ``summary``, ``data``, ``steps``, ``metrics`` (a dict),
            ``reproduce`` (a command), ``source`` (the checkpoint it came from), ``notes``.

    Returns the sha256 of ``model.safetensors``.
    """
    config = config if config is not None else getattr(model, 'pretrained_config', None)
    if config is None:
        raise ValueError('save_pretrained needs the model\'s config: pass config=cfg.model, or build the '
                         'model with mmspectral.apis.init_tokenizer / init_generator.')
    cfg = inference_config(config)
    kind = KINDS[cfg['type']]
    if type(model).__name__ != cfg['type']:
        raise ValueError(f'The config describes a {cfg["type"]} but the model is a {type(model).__name__}.')
    if osp.exists(folder) and os.listdir(folder) and not overwrite:
        what = 'a model folder' if is_model_folder(folder) else 'files'
        raise FileExistsError(f'{folder} already holds {what}; pass overwrite=True (publish_model.py '
                              '--overwrite) or choose another folder.')
    os.makedirs(folder, exist_ok=True)
    names = class_names if class_names is not None else getattr(model, 'class_names', ()) or ()
    if kind == 'generator' and names:
        # in the config, where hub users look for them (and checked as loading checks them)
        names = cfg['class_names'] = list(model._check_class_names(names))
    names = list(names)
    card = dict(card or {})
    sha = save_safetensors(osp.join(folder, WEIGHTS_FILE), _weights(model, kind),
                           metadata={'format': 'pt', 'mmspectral_kind': kind})
    write_json(osp.join(folder, CONFIG_FILE), cfg)
    meta = dict(format=FOLDER_FORMAT, kind=kind, mmspectral_version=__version__, weights_sha256=sha,
                num_parameters=sum(int(p.numel()) for p in model.parameters()), class_names=names,
                num_parameters_tokenizer=sum(int(p.numel()) for p in model.codec.parameters()),
                created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                **{k: card[k] for k in ('title', 'data', 'steps', 'metrics', 'source', 'reproduce')
                   if k in card})
    with open(osp.join(folder, CARD_FILE), 'w') as f:
        f.write(model_card(cfg, meta, card, osp.basename(osp.abspath(folder))))
    # written last, so that it covers every other file: a folder changed afterwards is refused on loading
    meta['files_sha256'] = {name: sha256_of_file(osp.join(folder, name))
                            for name in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)}
    write_json(osp.join(folder, MODEL_FOLDER_RECORD), meta)
    return sha


def from_pretrained(folder: str, device: str = 'cpu', verify: bool = True) -> nn.Module:
    """Build the model of a model folder and load its weights (no pickles); eval mode, on ``device``.

    The folder is data: nothing in it runs, and nothing is built before it is checked
    (:mod:`.folder_checks`). Its entries must be regular files that ``mmspectral_model.json`` records;
    ``verify`` compares each with its recorded sha256 first, so that a file cut short, replaced or edited is
    refused. ``config.json`` is read with :mod:`json` and checked, and the architecture it declares is
    compared with the weights' shapes (from the safetensors header) before the model is built. Returns a
    TokenizerModel or a GeneratorModel (with ``class_names`` and ``pretrained_config`` set). Raises
    :class:`ModelFolderError` (a ``ValueError``) or, for the weights file,
    :class:`~mmspectral.fileio.SafetensorsError`, saying what was wrong and what to do.
    """
    meta = read_folder_meta(folder)
    check_folder_files(folder, meta, verify)
    register_all_modules()
    cfg = read_folder_config(folder, meta['kind'])
    weights = osp.join(folder, WEIGHTS_FILE)
    check_config_fits_weights(cfg, read_safetensors_shapes(weights), osp.join(folder, CONFIG_FILE), weights,
                              lambda built: _weights(built, meta['kind']))
    state, _ = load_safetensors(weights)
    model = MODELS.build(copy.deepcopy(cfg))
    fix = 'The folder was written by another version of the model; publish it again from its checkpoint.'
    if meta['kind'] == 'tokenizer':
        load_state_dict_checked(persistent_tensors(model.tok), _strip(state, 'tokenizer.'), weights,
                                type(model.tok).__name__, fix, noun='weights file')
    else:
        gen = _strip(state, 'generator.')
        tok = _strip(state, 'tokenizer.')
        extra = sorted(k for k in state if not k.startswith(('generator.', 'tokenizer.')))
        if extra:
            raise SafetensorsError(f'{weights} holds names outside generator.* and tokenizer.*: '
                                   f'{extra[:5]}. {fix}')
        load_state_dict_checked(persistent_tensors(model.gen), gen, weights, type(model.gen).__name__, fix,
                                noun='weights file')
        load_state_dict_checked(persistent_tensors(model.tokenizer), tok, weights,
                                type(model.tokenizer).__name__, fix, noun='weights file')
    model.class_names = tuple(cfg.get('class_names') or meta.get('class_names', ()))
    model.pretrained_config = cfg
    model.model_folder = osp.abspath(folder)
    return model.eval().to(torch.device(device))


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _describe(cfg: Mapping) -> str:
    """One line on the network: type and the sizes users compare."""
    if cfg['type'] == 'TokenizerModel':
        t = cfg['tokenizer']
        keys = ('arch', 'width', 'depth', 'image_size', 'patch_size', 'num_tokens', 'codebook_size',
                'decoder_head')
        return f"{t.get('type')} (" + ', '.join(f'{k}={t[k]}' for k in keys if k in t) + ')'
    g, t = cfg['generator'], cfg['tokenizer']
    keys = ('depth', 'width', 'num_tokens', 'vocab_size', 'num_classes')
    return (f"{g.get('type')} (" + ', '.join(f'{k}={g[k]}' for k in keys if k in g)
            + f") over a {t.get('type')} of {t.get('num_tokens')} tokens at {t.get('image_size')} px")


def _parameters(meta: Mapping) -> str:
    total, tok = meta['num_parameters'], meta.get('num_parameters_tokenizer', 0)
    if meta['kind'] == 'generator':
        return f'- Parameters: {total:,} (generator {total - tok:,}, tokenizer {tok:,})'
    return f'- Parameters: {total:,}'


#: numbers of a run that are not measurements of the model (they go under 'Data and training', not 'Measured')
_NOT_METRICS = ('time', 'second', 'step', 'iter', 'epoch', 'seed', 'lr', 'memory', 'eta')


def is_metric(name: str) -> bool:
    """Whether a recorded number is a measurement of the model (not a run's time, step, seed, ...)."""
    words = name.lower().replace('/', '_').replace('-', '_').split('_')
    return not any(word.startswith(_NOT_METRICS) for word in words)


def _front_matter(kind: str, cfg: Mapping) -> List[str]:
    """The card's YAML front matter, as the Hugging Face Hub reads it."""
    network = cfg[kind].get('type', kind)
    tags = ['mmspectral', 'spectralar', 'autoregressive' if kind == 'generator' else 'image-tokenizer',
            network.lower()]
    pipeline = 'unconditional-image-generation' if kind == 'generator' else 'image-to-image'
    return (['---', 'license: apache-2.0', 'library_name: mmspectral', f'pipeline_tag: {pipeline}', 'tags:']
            + [f'- {tag}' for tag in tags] + ['---', ''])


def model_card(cfg: Mapping, meta: Mapping, card: Mapping, name: str = 'FOLDER') -> str:
    """The folder's README.md: YAML front matter (license, library, pipeline, tags), then what the model
    is, its data, its measured metrics and how to use it. The same model and card give the same bytes (no
    date: ``mmspectral_model.json`` records when the folder was written)."""
    kind = meta['kind']
    title = card.get('title') or f"mmspectral {kind}: {cfg[kind].get('type')}"
    lines = _front_matter(kind, cfg) + [
             f'# {title}', '', card.get('summary', f'A trained {kind} of mmspectral (SpectralAR).'), '',
             '## What it is', '', f'- Network: {_describe(cfg)}', _parameters(meta),
             f'- Files: `{CONFIG_FILE}` (config, data only), `{WEIGHTS_FILE}` (weights, safetensors'
             + (', generator and tokenizer' if kind == 'generator' else '') + f'), `{MODEL_FOLDER_RECORD}`.',
             f"- sha256 of `{WEIGHTS_FILE}`: `{meta['weights_sha256']}`",
             f"- Written by mmspectral {meta['mmspectral_version']}"]
    if meta.get('class_names'):
        lines.append(f"- Classes ({len(meta['class_names'])}): " + ', '.join(meta['class_names']))
    lines += ['', '## Data and training', '', f"- Data: {card.get('data', 'not recorded')}",
              f"- Steps: {card.get('steps', 'not recorded')}"]
    if card.get('source'):
        lines.append(f"- Made from: `{card['source']}`")
    numbers = card.get('metrics') or {}
    run = {k: v for k, v in numbers.items() if not is_metric(k)}
    if run:
        lines.append('- Run: ' + ', '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}'
                                           for k, v in run.items()))
    lines += ['', '## Measured', '']
    metrics = {k: v for k, v in numbers.items() if is_metric(k)}
    if metrics:
        lines += ['| metric | value |', '|---|---|']
        lines += [f'| {k} | {v:.4g} |' if isinstance(v, float) else f'| {k} | {v} |'
                  for k, v in metrics.items()]
    else:
        lines.append('Nothing measured was recorded with this folder.')
    lines += ['', '## Use', '', '```python', 'from mmspectral.apis import ' + (
        'init_tokenizer, reconstruct' if kind == 'tokenizer' else 'init_generator, generate'),
        f"model = {'init_tokenizer' if kind == 'tokenizer' else 'init_generator'}('path/to/{name}')",
        ('recons = reconstruct(model, images, k=[1, 4, 16])  # uint8 arrays, PIL images or tensors'
         if kind == 'tokenizer' else 'images = generate(model, classes=[0, 1, 2], seed=0, output="pil")'),
        '```', '']
    if card.get('reproduce'):
        lines += ['## Reproduce', '', '```', card['reproduce'], '```', '']
    if card.get('notes'):
        lines += ['## Notes', '', card['notes'], '']
    return '\n'.join(lines)
