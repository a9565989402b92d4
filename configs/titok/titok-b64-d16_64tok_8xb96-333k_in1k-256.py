# The paper's TiTok-B64-d16 baseline (Table 2: gFID 6.30): the same d16 generator on the tokens of the official
# TiTok-B-64 tokenizer (converted with tools/model_converters/titok_to_mmspectral.py).
_base_ = ['../spectralar/spectralar-d16_64tok_8xb96-333k_in1k-256.py']
model = dict(
    tokenizer=dict(
        _delete_=True,
        type='TiTokTokenizer',
        arch='B',
        image_size=256,
        patch_size=16,
        num_tokens=64,
        token_size=12,
        codebook_size=4096,
        decoder_head='proxy_codes',
        proxy_codebook_size=1024,
        legacy_token_projection=True,
        pixel_decoder=dict(type='MaskGITVQGAN', with_encoder=False, allow_random_init=True),
    ),
    tokenizer_checkpoint='checkpoints/titok_b64_mmspectral.pth',
)
train_dataloader = dict(dataset=dict(data_root='data/tokens/titok-b_64tok_in1k_train'))
val_dataloader = dict(dataset=dict(data_root='data/tokens/titok-b_64tok_in1k_val'))
test_dataloader = dict(dataset=dict(data_root='data/tokens/titok-b_64tok_in1k_val'))
