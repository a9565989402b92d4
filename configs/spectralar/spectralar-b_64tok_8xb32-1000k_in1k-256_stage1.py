# SpectralAR-B-64, stage 1 of TiTok's two-stage recipe: the decoder predicts the proxy codes a frozen MaskGIT-VQGAN
# gives the target image (for prefix k: the low-pass target of w_k). The
# teacher's public weights come from a path (nothing is downloaded): see docs/get_started.md.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/imagenet_256.py',
    '../_base_/models/spectralar_tokenizer_b64.py',
    '../_base_/schedules/tokenizer_adamw_cosine_1000k.py',
]
model = dict(
    recipe='proxy_codes',
    tokenizer=dict(
        decoder_head='proxy_codes',
        proxy_codebook_size=1024,
        # Only to show reconstructions during validation (soft codes -> MaskGIT decoder); frozen in stage 1.
        pixel_decoder=dict(type='MaskGITVQGAN', with_encoder=False, frozen=True, pretrained='checkpoints/maskgit-vqgan-imagenet-f16-256.bin'),
    ),
    proxy_teacher=dict(type='MaskGITVQGAN', frozen=True, pretrained='checkpoints/maskgit-vqgan-imagenet-f16-256.bin'),
)
