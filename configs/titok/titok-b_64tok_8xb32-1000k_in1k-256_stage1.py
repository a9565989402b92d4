# TiTok-B-64, stage 1 of TiTok's two-stage recipe: the decoder predicts the proxy codes a frozen MaskGIT-VQGAN
# gives the full image. The SpectralAR-B-64 stage-1 config with the TiTok tokenizer.
_base_ = ['../spectralar/spectralar-b_64tok_8xb32-1000k_in1k-256_stage1.py']
model = dict(tokenizer=dict(type='TiTokTokenizer', attn_mask=dict(type='BidirectionalMask'), freq_schedule=None,
                            spectral_supervision=False, prefix_sampling=None))
