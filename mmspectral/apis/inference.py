"""Loading a trained generator for sampling, shared by tools/sample.py and the figure tools."""
import json
import os.path as osp
from typing import Optional

import torch
from mmengine.runner import load_checkpoint

from mmspectral.datasets.token_dataset import META_FILE
from mmspectral.fileio import trusted_checkpoints
from mmspectral.registry import MODELS
from .config import load_config
from .setup_env import register_all_modules

__all__ = ['init_generator', 'add_sampling_args', 'sampling_options']


def init_generator(config: str, checkpoint: str, device='cpu', cfg_options: Optional[dict] = None):
    """Build the GeneratorModel of ``config`` (with its tokenizer) and load ``checkpoint``;
    eval mode, on ``device``.

    The tokenizer's own weights come from ``model.tokenizer_checkpoint`` of the config when the generator
    checkpoint does not hold them. ``model.class_names`` is set from the training tokens' meta file when it
    can be read (else empty).
    """
    register_all_modules()
    cfg = load_config(config, cfg_options)
    if cfg.model.get('type') != 'GeneratorModel' or cfg.model.get('tokenizer') is None:
        raise ValueError(f'{config} must configure a GeneratorModel with its tokenizer (to decode images); '
                         f'it has model.type={cfg.model.get("type")!r}.')
    model = MODELS.build(cfg.model)
    with trusted_checkpoints():
        load_checkpoint(model, checkpoint, map_location='cpu', strict=False, logger='current')
    model.class_names = _class_names(cfg)
    return model.eval().to(torch.device(device))


def _class_names(cfg) -> tuple:
    """The class names recorded with the generator's training tokens (tools/extract_tokens.py),
    if readable."""
    data_root = cfg.get('train_dataloader', {}).get('dataset', {}).get('data_root')
    meta = osp.join(data_root, META_FILE) if data_root else None
    if meta is None or not osp.isfile(meta):
        return ()
    with open(meta) as f:
        return tuple(json.load(f).get('classes', ()))


def add_sampling_args(parser) -> None:
    """The sampling options every sampling tool takes; unset ones keep the config's ``model.sampling``."""
    parser.add_argument('--cfg', type=float, default=None, help='guidance weight (default: the config)')
    parser.add_argument('--cfg-schedule', choices=['linear', 'constant'], default=None)
    parser.add_argument('--top-k', type=int, default=None)
    parser.add_argument('--top-p', type=float, default=None)
    parser.add_argument('--temperature', type=float, default=None)
    parser.add_argument('--num-tokens', type=int, default=None,
                        help='truncated generation: the first N tokens')


def sampling_options(args) -> dict:
    """``generate`` keyword arguments from parsed command-line options; None leaves the config's value."""
    names = (('cfg_scale', 'cfg'), ('cfg_schedule', 'cfg_schedule'), ('top_k', 'top_k'), ('top_p', 'top_p'),
             ('temperature', 'temperature'), ('num_tokens', 'num_tokens'))
    return {key: getattr(args, attr) for key, attr in names if getattr(args, attr, None) is not None}
