# The quick start's generator: a depth-4 SpectralAR transformer (width 256, 3.9M parameters) over the 16 tokens of
# the tiny nested spectral tokenizer, on EmbeddedShapes tokens extracted with tools/extract_tokens.py. CPU, fp32.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/schedules/generator_adamw_linear.py',
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
    tokenizer=dict(
        type='NestedSpectralTokenizer',
        arch='B',
        width=64,
        depth=2,
        num_heads=4,
        image_size=64,
        patch_size=16,
        num_tokens=16,
        token_size=8,
        codebook_size=512,
        init_std='fan_in',
        quantizer=dict(type='VectorQuantizer', commitment_cost=0.25, use_l2_norm=True, restart_dead_codes=True),
    ),
    tokenizer_checkpoint='work_dirs/spectralar-tiny_16tok_1xb32-5k_shapes-64/iter_5000.pth',
    image_value_range=(-1.0, 1.0),  # the tokenizer's input range
    sampling=dict(cfg_scale=3.0, cfg_schedule='linear', top_k=0, top_p=0.0),
)
train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='TokenDataset', data_root='data/tokens/spectralar-tiny_16tok_shapes-64_train', variant='random'),
)
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='TokenDataset', data_root='data/tokens/spectralar-tiny_16tok_shapes-64_val', variant='first',
                 test_mode=True),
)
test_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='TokenDataset', data_root='data/tokens/spectralar-tiny_16tok_shapes-64_val', variant='first',
                 test_mode=True),
)
val_evaluator = dict(type='TokenPredictionMetric', num_bins=4)
test_evaluator = dict(type='TokenPredictionMetric', num_bins=4)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',  # fp32: the tiny model gains little from bf16 on a CPU
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
    clip_grad=dict(max_norm=2.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            'embed': dict(decay_mult=0.0),
            'pos_start': dict(decay_mult=0.0),
            'pos_1LC': dict(decay_mult=0.0),
            'scale_mul': dict(decay_mult=0.0),
        },
    ),
)
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
