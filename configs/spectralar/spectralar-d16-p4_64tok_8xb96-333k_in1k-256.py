# SpectralAR-d16-p4 (Table 2: gFID 3.13): 16 steps of 4 tokens, block-causal attention over groups of 4.
_base_ = ['./spectralar-d16_64tok_8xb96-333k_in1k-256.py']
model = dict(generator=dict(attn_mask=dict(type='BlockCausalMask', block_size=4)))
