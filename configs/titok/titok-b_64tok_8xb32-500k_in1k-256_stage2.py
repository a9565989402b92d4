# TiTok-B-64, stage 2: encoder, latent tokens and codebook frozen; the decoder and the MaskGIT pixel decoder
# fine-tuned on pixels. The SpectralAR-B-64 stage-2 config with the TiTok tokenizer and TiTok's stage-1 weights.
_base_ = ['../spectralar/spectralar-b_64tok_8xb32-500k_in1k-256_stage2.py']
model = dict(tokenizer=dict(type='TiTokTokenizer', attn_mask=dict(type='BidirectionalMask'), freq_schedule=None,
                            spectral_supervision=False, prefix_sampling=None))
load_from = 'work_dirs/titok-b_64tok_8xb32-1000k_in1k-256_stage1/iter_1000000.pth'
