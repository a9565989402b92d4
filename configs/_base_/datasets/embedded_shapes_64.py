# The embedded default dataset: 10 procedurally drawn classes at 64x64, nothing to download.
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='EmbeddedShapesDataset',
        num_samples=10000,
        image_size=64,
        seed=0,
        pipeline=[
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackImageInputs'),
        ],
    ),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='EmbeddedShapesDataset',
        num_samples=500,
        image_size=64,
        seed=1,
        test_mode=True,
        pipeline=[dict(type='PackImageInputs')],
    ),
)
test_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='EmbeddedShapesDataset',
        num_samples=1000,
        image_size=64,
        seed=2,
        test_mode=True,
        pipeline=[dict(type='PackImageInputs')],
    ),
)
