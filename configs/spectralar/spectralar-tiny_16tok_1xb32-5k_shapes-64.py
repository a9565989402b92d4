# The quick start's tokenizer: a tiny nested spectral tokenizer on EmbeddedShapes ('coarse' classes) at 64 px,
# 16 tokens, 5,000 steps in about 4 minutes on 2 idle CPU cores. The quick start stretches it to 8,000 steps
# (docs/design.md, the plateau) and has half of every batch decode all 16 tokens (FULL_FRACTION=0.5 in
# tools/quickstart.sh); the tiny Table 4 trains it as it is, k uniform in 1..16 (its SpectralAR row).
# Schedule: eq. 9's shape at N = 16, 64 px (w_k = k to 8, then 10..16, then 28..64).
# The network itself is _base_/models/spectralar_tokenizer_tiny.py (patch 16, width 64, depth 2, inputs in
# [-1, 1], convolutional decoder head); a ViT tokenizer this small needs thousands of steps to leave the
# colour-only plateau.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/embedded_shapes_64.py',
    '../_base_/models/spectralar_tokenizer_b64.py',
    '../_base_/models/spectralar_tokenizer_tiny.py',
    '../_base_/schedules/tokenizer_adamw_cosine_1000k.py',
]
model = dict(tokenizer={{_base_.tiny_tokenizer}})
# The 'coarse' classes (bold shapes, bars, pairs of disks: recognisable from the w = 5 low-pass at 64 px),
# which a tokenizer this small learns in minutes; the 'fine' ones need w = 10 (docs/design.md, "Which classes").
# Drawing an image costs more than this model's step: keep them (in the main process, no worker to feed).
train_dataloader = dict(batch_size=32, num_workers=0, persistent_workers=False,
                        dataset=dict(num_samples=20000, cache_images=True, class_set='coarse'))
val_dataloader = dict(batch_size=50, dataset=dict(num_samples=200, class_set='coarse'))
test_dataloader = dict(batch_size=50, dataset=dict(num_samples=500, class_set='coarse'))
val_evaluator = dict(codebook_size=512)
test_evaluator = dict(codebook_size=512)

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=100, end=5000),
]
train_cfg = dict(max_iters=5000, val_interval=5000)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=2, save_last=True),
)
log_processor = dict(window_size=100)
custom_hooks = [
    dict(type='EMAHook', momentum=1e-2, priority='ABOVE_NORMAL'),
    dict(type='SpectralReconstructionHook', num_images=4, out_dir='vis'),
]
