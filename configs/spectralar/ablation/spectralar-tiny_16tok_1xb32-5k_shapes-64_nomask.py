# Tiny ablation on EmbeddedShapes: + spectral supervision (bidirectional attention, uniform schedule): Table 4
# row 2.
_base_ = ['../spectralar-tiny_16tok_1xb32-5k_shapes-64.py']
model = dict(tokenizer=dict(freq_schedule=dict(type='UniformFreqSchedule'),
                            attn_mask=dict(type='BidirectionalMask')))
