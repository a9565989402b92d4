from .tokenizer_model import TokenizerModel, default_eval_prefixes

__all__ = ['TokenizerModel', 'default_eval_prefixes']
