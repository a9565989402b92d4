# SpectralAR-d16: VAR's d16 transformer (width 1024, 16 heads, 310M parameters) over the 64 tokens of the
# SpectralAR-B-64 tokenizer, one token a step. The tokenizer (frozen) decodes samples; its checkpoint is the
# stage-2 result (or any TokenizerModel checkpoint of this architecture).
model = dict(
    type='GeneratorModel',
    generator=dict(
        type='SpectralARGenerator',
        depth=16,
        vocab_size=4096,
        num_tokens=64,
        num_classes=1000,
        attn_mask=dict(type='SpectralCausalMask'),
        cond_drop_rate=0.1,
        init_adaln_gamma=1e-3,
    ),
    tokenizer=dict(
        type='NestedSpectralTokenizer',
        arch='B',
        image_size=256,
        patch_size=16,
        num_tokens=64,
        token_size=12,
        codebook_size=4096,
        decoder_head='proxy_codes',
        proxy_codebook_size=1024,
        pixel_decoder=dict(type='MaskGITVQGAN', with_encoder=False, allow_random_init=True),
    ),
    tokenizer_checkpoint='work_dirs/spectralar-b_64tok_8xb32-500k_in1k-256_stage2/iter_500000.pth',
    sampling=dict(cfg_scale=1.5, cfg_schedule='linear', top_k=900, top_p=0.96),
)
