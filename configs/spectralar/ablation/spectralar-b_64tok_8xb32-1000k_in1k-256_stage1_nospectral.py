# Ablation TiTok tokens (no spectral supervision, no causal mask, all N tokens every step): Table 4 row 1.
_base_ = ['../spectralar-b_64tok_8xb32-1000k_in1k-256_stage1.py']
model = dict(tokenizer=dict(freq_schedule=dict(type='UniformFreqSchedule'),
                            attn_mask=dict(type='BidirectionalMask'),
                            spectral_supervision=False, prefix_sampling=dict(distribution='full')))
