# ImageNet tokens extracted once by tools/extract_tokens.py (train with --augment flip; the val split as is):
#   bash tools/... see docs/get_started.md, section Generators.
train_dataloader = dict(
    batch_size=96,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='TokenDataset', data_root='data/tokens/spectralar-b_64tok_in1k_train', variant='random'),
)
val_dataloader = dict(
    batch_size=96,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='TokenDataset', data_root='data/tokens/spectralar-b_64tok_in1k_val', variant='first',
                 test_mode=True),
)
test_dataloader = dict(
    batch_size=96,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='TokenDataset', data_root='data/tokens/spectralar-b_64tok_in1k_val', variant='first',
                 test_mode=True),
)
val_evaluator = dict(type='TokenPredictionMetric', num_bins=8)
test_evaluator = dict(type='TokenPredictionMetric', num_bins=8)
