"""Loading a trained generator for sampling, shared by tools/sample.py and the figure tools."""
import json
import os.path as osp
from typing import Iterable, Optional, Union

import torch

from mmspectral.datasets.token_dataset import META_FILE
from mmspectral.fileio import SAME_ARCHITECTURE, load_state_dict_checked, read_state_dict, trust_files
from mmspectral.registry import MODELS
from .config import load_config
from .setup_env import register_all_modules

__all__ = ['init_generator', 'add_sampling_args', 'sampling_options']


def init_generator(config: str, checkpoint: str, device='cpu', cfg_options: Optional[dict] = None,
                   trust_checkpoints: Union[str, Iterable[str], None] = None):
    """Build the GeneratorModel of ``config`` (with its tokenizer) and load ``checkpoint`` strictly;
    eval mode, on ``device``.

    Every parameter of the generator must be in the checkpoint with its shape, and the checkpoint may hold
    nothing else: a checkpoint of another model (a tokenizer's, say) is refused, never sampled from at random.
    The tokenizer's own weights come from ``model.tokenizer_checkpoint`` of the config when the generator
    checkpoint does not hold them. ``model.class_names`` is set from the training tokens' meta file when it
    can be read (else empty). ``trust_checkpoints``: files to load with full unpickling (which runs any code
    they carry), on top of the config's ``trust_checkpoints``.
    """
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
