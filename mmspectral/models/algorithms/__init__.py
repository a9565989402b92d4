from .generator_model import GeneratorModel, position_bins
from .tokenizer_model import TokenizerModel, default_eval_prefixes

__all__ = ['TokenizerModel', 'GeneratorModel', 'default_eval_prefixes', 'position_bins']
