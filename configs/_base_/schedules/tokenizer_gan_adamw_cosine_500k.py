# TiTok's stage-2 schedule: two AdamW optimisers (tokenizer decoder, discriminator), betas (0.9, 0.999), wd 1e-4,
# 5k linear warm-up then cosine to 1e-5 over 500k iterations, grad clip 1.0, weight EMA 0.999.
_no_decay = dict(
    norm_decay_mult=0.0,
    bias_decay_mult=0.0,
    flat_decay_mult=0.0,
    custom_keys={
        'embed': dict(decay_mult=0.0),
        'latent_tokens': dict(decay_mult=0.0),
        'mask_token': dict(decay_mult=0.0),
    },
)
optim_wrapper = dict(
    constructor='MultiOptimWrapperConstructor',
    generator=dict(
        module='tokenizer',
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4, fused=True),
        clip_grad=dict(max_norm=1.0),
        paramwise_cfg=_no_decay,
    ),
    discriminator=dict(
        module='gan_loss.discriminator',
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4, fused=True),
        clip_grad=dict(max_norm=1.0),
        paramwise_cfg=_no_decay,
    ),
)
param_scheduler = dict(
    generator=[
        dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=5000),
        dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=5000, end=500000),
    ],
    discriminator=[
        dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=5000),
        dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=5000, end=500000),
    ],
)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=500000, val_interval=50000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
custom_hooks = [
    dict(type='EMAHook', momentum=1e-3, priority='ABOVE_NORMAL'),
    dict(type='SpectralReconstructionHook', num_images=4),
]
# Tokenizer and discriminator are wrapped in DDP separately: each has its own update. The discriminator is not
# used by the tokenizer's backward pass, so unused parameters must be allowed.
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', find_unused_parameters=True)
