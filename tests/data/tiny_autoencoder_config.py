_base_ = [
    '../../configs/_base_/default_runtime.py',
    '../../configs/_base_/datasets/embedded_shapes_32.py',
]
custom_imports = dict(imports=['tiny_model'], allow_failed_imports=False)

model = dict(
    type='TinySpectralAutoencoder',
    width=8,
    omega=8,
    data_preprocessor=dict(type='ImageDataPreprocessor'),
)
train_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False, dataset=dict(num_samples=64))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=6, val_interval=1000)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False, dataset=dict(num_samples=24))
test_cfg = dict(type='TestLoop')
test_evaluator = dict(type='TinyMeanMetric')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2, max_keep_ckpts=5, save_last=True),
)
log_processor = dict(window_size=1)
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
randomness = dict(seed=0, deterministic=True)
