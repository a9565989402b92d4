# SpectralAR-d24 (Table 2: gFID 2.13): depth 24 (1.0B), VAR's d24 recipe: 350 epochs at batch 768, base lr 8e-5
# (peak 2.4e-4), AdaLN gamma init 1e-4, decay to 0.01x.
_base_ = ['./spectralar-d16_64tok_8xb96-333k_in1k-256.py']
model = dict(generator=dict(depth=24, init_adaln_gamma=1e-4))
optim_wrapper = dict(optimizer=dict(lr=2.4e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.005, by_epoch=False, begin=0, end=11680),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=False, begin=11680, end=584000),
]
train_cfg = dict(max_iters=584000)
