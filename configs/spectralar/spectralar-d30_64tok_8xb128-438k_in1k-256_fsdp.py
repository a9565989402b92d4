# SpectralAR-d30 (2.0B; not in the paper, which stops at d24): VAR's d30 recipe with FSDP. VAR trains d30
# for 350 epochs at batch 1024 (8 GPUs x 128 here; 438k iterations), base lr 8e-5 (peak 8e-5 * 1024 / 256
# = 3.2e-4), warm-up 7 epochs, decay to 0.01x, AdaLN gamma init 1e-5. VAR also raises the weight decay
# from 0.05 to 0.08 over training (--twde=0.08); this config keeps 0.05.
_base_ = [
    './spectralar-d24_64tok_8xb96-584k_in1k-256.py',
    '../_base_/schedules/generator_fsdp.py',
]
runner_type = 'SpectralFlexibleRunner'
model = dict(generator=dict(depth=30, init_adaln_gamma=1e-5))
train_dataloader = dict(batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=3.2e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.005, by_epoch=False, begin=0, end=8760),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.01, by_epoch=False, begin=8760, end=438000),
]
train_cfg = dict(max_iters=438000)
