# SpectralAR-d20 (Table 2: gFID 2.49): depth 20 (600M), VAR's 250 epochs at batch 768.
_base_ = ['./spectralar-d16_64tok_8xb96-333k_in1k-256.py']
model = dict(generator=dict(depth=20))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.005, by_epoch=False, begin=0, end=8340),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.1, by_epoch=False, begin=8340, end=417000),
]
train_cfg = dict(max_iters=417000)
