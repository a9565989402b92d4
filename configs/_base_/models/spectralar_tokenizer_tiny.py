# The quick start's tiny nested spectral tokenizer (EmbeddedShapes, 64 px, 16 tokens): shared by its training
# config and by the generator configs that decode its tokens, so that the two cannot drift apart.
# Width 64 and depth 2 make a step cheap enough for the thousands of steps a ViT tokenizer needs to start drawing
# outlines (docs/design.md).
tiny_tokenizer = dict(
    type='NestedSpectralTokenizer',
    arch='B',
    width=64,
    depth=2,
    num_heads=4,
    image_size=64,
    patch_size=16,
    num_tokens=16,
    token_size=8,
    codebook_size=512,
    init_std='fan_in',  # TiTok's fixed 0.02 stalls small widths for thousands of steps
    # A tiny model trained for minutes collapses onto one code per position without restarts.
    quantizer=dict(type='VectorQuantizer', commitment_cost=0.25, use_l2_norm=True, restart_dead_codes=True),
    # A convolutional up-sampler from the 4 x 4 grid of patch features instead of TiTok's per-patch linear map:
    # no 16 px seams (blockiness 1.08 against 2.00) and +2 dB on the coarse classes; the last doubling is a
    # pixel shuffle, which makes it cheaper than the linear head on a CPU (docs/design.md, "Patch seams").
    decoder_head='conv',
    conv_head=dict(channels=64, min_channels=16, convs_per_stage=1, pixel_shuffle=2),
    # Zero-centred inputs: with [0, 1] the encoder's latents start nearly identical for every image. The data
    # preprocessor and every decode to [0, 1] take the range from here.
    value_range=(-1.0, 1.0),
)
