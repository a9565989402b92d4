# TiTok-B-64, stage 2: encoder, latent tokens and codebook frozen; the decoder and the MaskGIT pixel decoder
# behind it learn with L2, perceptual (ConvNeXt-S logits, 0.1) and hinge-GAN (0.01 from 20k, LeCam 0.001)
# losses. Starts from the stage-1 checkpoint (load_from).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/imagenet_256.py',
    '../_base_/models/titok_tokenizer_b64.py',
    '../_base_/schedules/tokenizer_gan_adamw_cosine_500k.py',
]
model = dict(
    recipe='decoder_finetune',
    tokenizer=dict(
        decoder_head='proxy_codes',
        proxy_codebook_size=1024,
        pixel_decoder=dict(type='MaskGITVQGAN', with_encoder=False, pretrained='checkpoints/maskgit-vqgan-imagenet-f16-256.bin'),
    ),
    perceptual_loss=dict(type='ConvNeXtPerceptualLoss', weights_path='checkpoints/convnext_small-0c510722.pth'),
    perceptual_loss_weight=0.1,
    gan_loss=dict(
        type='GANLoss',
        discriminator=dict(type='PatchGANDiscriminator'),
        weight=0.01,
        start_iter=20000,
        lecam_weight=0.001,
    ),
)
load_from = 'work_dirs/titok-b_64tok_8xb32-1000k_in1k-256_stage1/iter_1000000.pth'
