# Runtime defaults shared by every mmspectral config.
default_scope = 'mmspectral'
runner_type = 'SpectralRunner'

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # Empty dist_cfg: NCCL when there is a GPU, gloo otherwise, and collectives time out after 600 s. Set
    # dict(backend=..., timeout=SECONDS) to override (docs/distributed.md).
    dist_cfg=dict(),
)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Stops the run at a NaN / Inf loss before EMA or a checkpoint sees it; action='skip' skips such
    # steps (with AutocastOptimWrapper). A default hook, not a custom one: configs replace custom_hooks.
    nonfinite_loss=dict(type='NonFiniteLossHook', action='raise'),
)

log_processor = dict(by_epoch=False, window_size=50)
visualizer = dict(
    type='Visualizer',
    vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')],
)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
