# TiTok's tokenizer schedule: AdamW (0.9, 0.99), wd 1e-4 without decay on norms, biases, embeddings and the
# latent / mask tokens, 10k linear warm-up then cosine to 1e-5 over 1M iterations, grad clip 1.0, weight EMA 0.999.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-4, fused=True),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            'embed': dict(decay_mult=0.0),
            'latent_tokens': dict(decay_mult=0.0),
            'mask_token': dict(decay_mult=0.0),
        },
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10000),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=10000, end=1000000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000000, val_interval=50000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
custom_hooks = [
    # MMEngine's EMA: averaged = (1 - momentum) * averaged + momentum * current, i.e. decay 0.999.
    dict(type='EMAHook', momentum=1e-3, priority='ABOVE_NORMAL'),
    dict(type='SpectralReconstructionHook', num_images=4),
]
