"""Entry points: component registration, config loading, Runner building, the inference API and model folders
(the top layer)."""
from .codec import bits_per_image, codec_info, compress, decompress
from .config import build_runner, default_work_dir, load_config, trust_from_args
from .images import from_batch, to_batch
from .inference import (add_sampling_args, generate, get_model, init_generator, init_tokenizer, list_models,
                        reconstruct, sampling_options, super_resolve, variations)
from .inferencer import SpectralInferencer
from .pretrained import ModelFolderError, from_pretrained, is_model_folder, read_folder_meta, save_pretrained
from .setup_env import register_all_modules

__all__ = ['register_all_modules', 'load_config', 'build_runner', 'default_work_dir', 'init_generator',
           'init_tokenizer', 'reconstruct', 'generate', 'variations', 'super_resolve', 'list_models',
           'get_model', 'save_pretrained', 'from_pretrained', 'is_model_folder', 'read_folder_meta',
           'ModelFolderError', 'to_batch', 'from_batch', 'add_sampling_args', 'sampling_options',
           'trust_from_args', 'compress', 'decompress', 'bits_per_image', 'codec_info', 'SpectralInferencer']
