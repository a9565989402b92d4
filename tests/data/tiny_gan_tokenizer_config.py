# A tiny nested spectral tokenizer trained with the GAN recipe's machinery: two optimisers, separate DDP
# wrappers for tokenizer and discriminator, the adversarial terms on from the first iteration.
_base_ = ['../../configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py']
model = dict(
    tokenizer=dict(width=32, depth=1, num_heads=2),
    gan_loss=dict(
        type='GANLoss',
        discriminator=dict(type='PatchGANDiscriminator', base_channels=32, pool_size=4),
        weight=0.01,
        start_iter=0,
        lecam_weight=0.001,
    ),
)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(num_samples=64))
val_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(num_samples=8))
optim_wrapper = dict(
    _delete_=True,
    constructor='MultiOptimWrapperConstructor',
    generator=dict(module='tokenizer', type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4),
                   clip_grad=dict(max_norm=1.0)),
    discriminator=dict(module='gan_loss.discriminator', type='OptimWrapper',
                       optimizer=dict(type='AdamW', lr=1e-4)),
)
param_scheduler = dict(
    _delete_=True,
    generator=[dict(type='ConstantLR', factor=1.0, by_epoch=False)],
    discriminator=[dict(type='ConstantLR', factor=1.0, by_epoch=False)],
)
train_cfg = dict(max_iters=4, val_interval=4)
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4))
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', find_unused_parameters=True)
