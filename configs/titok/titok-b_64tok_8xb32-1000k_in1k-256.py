# TiTok-B-64 in one stage: pixel decoder head, L2 + VQ + perceptual (ConvNeXt-S logits, 0.1) + hinge GAN
# (0.01 from 200k, LeCam 0.001), 1M iterations. The paper follows TiTok's two-stage recipe (the _stage1 /
# _stage2 configs); this one needs no MaskGIT teacher.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/imagenet_256.py',
    '../_base_/models/titok_tokenizer_b64.py',
    '../_base_/schedules/tokenizer_gan_adamw_cosine_500k.py',
]
model = dict(
    recipe='pixel',
    perceptual_loss=dict(type='ConvNeXtPerceptualLoss', weights_path='checkpoints/convnext_small-0c510722.pth'),
    perceptual_loss_weight=0.1,
    gan_loss=dict(
        type='GANLoss',
        discriminator=dict(type='PatchGANDiscriminator'),
        weight=0.01,
        start_iter=200000,
        lecam_weight=0.001,
    ),
)
param_scheduler = dict(
    generator=[
        dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10000),
        dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=10000, end=1000000),
    ],
    discriminator=[
        dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10000),
        dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=10000, end=1000000),
    ],
)
train_cfg = dict(max_iters=1000000)
