# SpectralAR's nested spectral tokenizer at the paper's setting: ViT-B encoder and decoder, 64 tokens of a
# 4096 x 12 codebook, 256 px, patch 16, spectral causal mask, eq. 9 schedule, prefix length uniform per sample.
model = dict(
    type='TokenizerModel',
    data_preprocessor=dict(type='ImageDataPreprocessor'),  # [0, 1]: the tokenizer's value_range
    tokenizer=dict(
        type='NestedSpectralTokenizer',
        arch='B',
        image_size=256,
        patch_size=16,
        num_tokens=64,
        token_size=12,
        codebook_size=4096,
        quantizer=dict(type='VectorQuantizer', commitment_cost=0.25, use_l2_norm=True),
        attn_mask=dict(type='SpectralCausalMask'),
        freq_schedule=dict(type='NonUniformFreqSchedule'),
        spectral_supervision=True,
        prefix_sampling=dict(distribution='uniform', per_sample=True, min_length=1),
        decoder_head='pixels',
    ),
    recipe='pixel',
    pixel_loss_weight=1.0,
    quantizer_loss_weight=1.0,
)
val_evaluator = dict(type='ReconstructionMetric', codebook_size=4096)
test_evaluator = dict(type='ReconstructionMetric', codebook_size=4096)
