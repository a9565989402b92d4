# TiTok-B-64 in one stage, the baseline of SpectralAR-B-64: the same recipe with the TiTok tokenizer (bidirectional
# attention, every sample decodes all 64 tokens against the full image; Table 4's first row at full size).
_base_ = ['../spectralar/spectralar-b_64tok_8xb32-1000k_in1k-256.py']
model = dict(tokenizer=dict(type='TiTokTokenizer', attn_mask=dict(type='BidirectionalMask'), freq_schedule=None,
                            spectral_supervision=False, prefix_sampling=None))
