# The quick start's generator: a depth-4 SpectralAR transformer (width 256, 3.9M parameters) over the 16
# tokens of the tiny nested spectral tokenizer, on EmbeddedShapes tokens extracted with
# tools/extract_tokens.py. CPU, fp32. 3,000 steps here; the quick start and the tiny Table 4 train 1,000
# (GENERATOR_ITERS). Samples are drawn at cfg 3 (below), which pushes them towards class-typical images:
# right for a class grid, and one reason the tiny Table 4's samples score as well as their tokenizer's
# reconstructions (docs/results.md).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/token_folders.py',
    '../_base_/schedules/generator_adamw_linear.py',
    '../_base_/models/spectralar_tokenizer_tiny.py',
]
model = dict(
    type='GeneratorModel',
    generator=dict(
        type='SpectralARGenerator',
        depth=4,
        vocab_size=512,
        num_tokens=16,
        num_classes=10,
        attn_mask=dict(type='SpectralCausalMask'),
        cond_drop_rate=0.1,
        drop_path_rate=0.0,
        init_adaln_gamma=1e-3,
    ),
    tokenizer={{_base_.tiny_tokenizer}},
    tokenizer_checkpoint='work_dirs/spectralar-tiny_16tok_1xb32-5k_shapes-64/iter_5000.pth',
    sampling=dict(cfg_scale=3.0, cfg_schedule='linear', top_k=0, top_p=0.0),
)
train_dataloader = dict(batch_size=64, num_workers=0, persistent_workers=False, pin_memory=False,
                        dataset=dict(data_root='data/tokens/spectralar-tiny_16tok_shapes-64_train'))
val_dataloader = dict(batch_size=100, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root='data/tokens/spectralar-tiny_16tok_shapes-64_val'))
test_dataloader = dict(batch_size=100, num_workers=0, persistent_workers=False,
                       dataset=dict(data_root='data/tokens/spectralar-tiny_16tok_shapes-64_val'))
val_evaluator = dict(num_bins=4)
test_evaluator = dict(num_bins=4)
# fp32: the tiny model gains little from bf16 on a CPU.
optim_wrapper = dict(dtype='float32', optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.1, by_epoch=False, begin=100, end=3000),
]
train_cfg = dict(max_iters=3000, val_interval=1000)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=1, save_last=True),
)
log_processor = dict(window_size=100)
