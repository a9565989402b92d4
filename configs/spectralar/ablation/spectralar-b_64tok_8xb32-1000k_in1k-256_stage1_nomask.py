# Ablation + spectral supervision (bidirectional attention, uniform schedule): Table 4 row 2.
_base_ = ['../spectralar-b_64tok_8xb32-1000k_in1k-256_stage1.py']
model = dict(tokenizer=dict(freq_schedule=dict(type='UniformFreqSchedule'),
                            attn_mask=dict(type='BidirectionalMask')))
