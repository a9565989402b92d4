"""Tiny models for the tests that need trained-looking ones: the quick start's configs with random weights
(64 px, 16 tokens)."""
import os.path as osp

import torch

TOKENIZER_CONFIG = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'
GENERATOR_CONFIG = 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLASSES = ['disk', 'ring', 'hbar', 'vbar', 'square', 'triangle', 'pair', 'cross', 'plus', 'quad']


def generator(work, tok_ckpt, seed, **generator_options):
    from mmspectral.apis import init_generator, load_config
    from mmspectral.registry import MODELS
    options = {'model.tokenizer_checkpoint': tok_ckpt,
               **{f'model.generator.{k}': v for k, v in generator_options.items()}}
    torch.manual_seed(seed)
    gen_model = MODELS.build(load_config(osp.join(REPO_ROOT, GENERATOR_CONFIG), options).model)
    with torch.no_grad():  # logits that depend on the tokens and the class
        for p in gen_model.generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = str(work / f'generator{seed}.pth')
    torch.save(dict(state_dict=gen_model.state_dict(), meta=dict(iter=7)), ckpt)
    model = init_generator(osp.join(REPO_ROOT, GENERATOR_CONFIG), ckpt, cfg_options=options)
    model.class_names = tuple(CLASSES)
    return model, ckpt


def shapes(n=4, seed=1):
    from mmspectral.evaluation.embedded_classifier import render_batch
    images, labels = render_batch(range(n), 64, seed=seed, num_classes=10, class_set='coarse')
    return images, labels


def tokenizer_checkpoint(work) -> str:
    """A checkpoint of the quick start's tokenizer config with random weights (seed 0), as training writes."""
    from mmspectral.apis import load_config
    from mmspectral.registry import MODELS
    torch.manual_seed(0)
    tok_model = MODELS.build(load_config(osp.join(REPO_ROOT, TOKENIZER_CONFIG)).model)
    path = str(work / 'tokenizer.pth')
    torch.save(dict(state_dict=tok_model.state_dict(), meta=dict(iter=5)), path)
    return path
