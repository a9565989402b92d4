"""The codec tests' models: the quick start's configs with random weights (64 px, 16 tokens)."""
import pytest
from tiny_models import generator, tokenizer_checkpoint


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    work = tmp_path_factory.mktemp('codec')
    tok_ckpt = tokenizer_checkpoint(work)
    model, gen_ckpt = generator(work, tok_ckpt, seed=1)
    other, _ = generator(work, tok_ckpt, seed=2)
    return dict(work=work, model=model, other=other, tok_ckpt=tok_ckpt, gen_ckpt=gen_ckpt)
