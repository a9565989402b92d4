# Tiny ablation on EmbeddedShapes: TiTok tokens (no spectral supervision, no causal mask, all N tokens every
# step): Table 4 row 1. The uniform schedule only gives evaluation low-pass images to compare prefixes with;
# this row never trains towards them (its prefixes are not meant to reconstruct them).
_base_ = ['../spectralar-tiny_16tok_1xb32-5k_shapes-64.py']
model = dict(tokenizer=dict(freq_schedule=dict(type='UniformFreqSchedule'),
                            attn_mask=dict(type='BidirectionalMask'),
                            spectral_supervision=False, prefix_sampling=dict(distribution='full')))
