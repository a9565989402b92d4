# Table 4 at tiny scale: the quick-start generator over the tokens of the tiny tokenizer ablation
# spectralar-tiny_16tok_1xb32-5k_shapes-64_nested.py (same tokenizer switches, for decoding).
_base_ = ['../spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py']
model = dict(tokenizer=dict(spectral_supervision=False))
