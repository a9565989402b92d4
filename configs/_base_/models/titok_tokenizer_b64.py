# The TiTok baseline tokenizer: the same network as SpectralAR's, bidirectional attention, every sample
# decodes all 64 tokens against the full image.
model = dict(
    type='TokenizerModel',
    data_preprocessor=dict(type='ImageDataPreprocessor', value_range=(0.0, 1.0)),
    tokenizer=dict(
        type='TiTokTokenizer',
        arch='B',
        image_size=256,
        patch_size=16,
        num_tokens=64,
        token_size=12,
        codebook_size=4096,
        quantizer=dict(type='VectorQuantizer', commitment_cost=0.25, use_l2_norm=True),
        attn_mask=dict(type='BidirectionalMask'),
        freq_schedule=None,
        spectral_supervision=False,
        prefix_sampling=None,
        decoder_head='pixels',
    ),
    recipe='pixel',
    pixel_loss_weight=1.0,
    quantizer_loss_weight=1.0,
)
val_evaluator = dict(type='ReconstructionMetric', codebook_size=4096)
test_evaluator = dict(type='ReconstructionMetric', codebook_size=4096)
