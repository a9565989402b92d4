# VAR's generator recipe: AdamW (0.9, 0.95), weight decay 0.05 except on 1-D parameters, biases, embeddings and
# learned positions, peak lr 1e-4 * batch / 256 (here 768: 3e-4), linear warm-up over the first 2% (VAR: ep / 50
# epochs from 0.005x), then linear decay to 0.1x, grad clip 2.0, bf16 autocast on GPU. 333k iterations at batch
# 768 are VAR-d16's 200 ImageNet epochs.
optim_wrapper = dict(
    type='AutocastOptimWrapper',  # bf16 autocast without loss scaling, on GPU and CPU
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True),
    clip_grad=dict(max_norm=2.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            'embed': dict(decay_mult=0.0),  # word_embed, lvl_embed
            'class_emb': dict(decay_mult=0.0),
            'pos_start': dict(decay_mult=0.0),
            'pos_1LC': dict(decay_mult=0.0),
            'scale_mul': dict(decay_mult=0.0),
        },
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.005, by_epoch=False, begin=0, end=6670),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.1, by_epoch=False, begin=6670, end=333000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=333000, val_interval=16700)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
