"""The codec tests' models: the quick start's configs with random weights (64 px, 16 tokens)."""
import os.path as osp

import pytest
import torch
from codec_models import GENERATOR_CONFIG, REPO_ROOT, TOKENIZER_CONFIG, generator  # noqa: F401


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    from mmspectral.apis import load_config
    from mmspectral.registry import MODELS
    work = tmp_path_factory.mktemp('codec')
    torch.manual_seed(0)
    tok_model = MODELS.build(load_config(osp.join(REPO_ROOT, TOKENIZER_CONFIG)).model)
    tok_ckpt = str(work / 'tokenizer.pth')
    torch.save(dict(state_dict=tok_model.state_dict(), meta=dict(iter=5)), tok_ckpt)
    model, gen_ckpt = generator(work, tok_ckpt, seed=1)
    other, _ = generator(work, tok_ckpt, seed=2)
    return dict(work=work, model=model, other=other, tok_ckpt=tok_ckpt, gen_ckpt=gen_ckpt)
