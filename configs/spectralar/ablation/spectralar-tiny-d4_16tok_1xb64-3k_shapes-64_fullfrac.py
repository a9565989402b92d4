# The quick-start generator over the tokens of spectralar-tiny_16tok_1xb32-5k_shapes-64_fullfrac.py (same
# tokenizer, for decoding).
_base_ = ['../spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py']
model = dict(tokenizer=dict(prefix_sampling=dict(distribution='uniform', per_sample=True, min_length=1,
                                                 full_fraction=0.5)))
