# Token folders written by tools/extract_tokens.py (one per split; the train split with --augment flip, the
# val split as is), read by TokenDataset. The configs that use this base name their folders (data_root) and
# batch sizes: the ImageNet generators in configs/spectralar/spectralar-d16_*.py, the tiny EmbeddedShapes ones
# in configs/spectralar/spectralar-tiny-*.py. docs/get_started.md, section Generators, shows the extraction.
train_dataloader = dict(
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='TokenDataset', variant='random'),
)
val_dataloader = dict(
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='TokenDataset', variant='first', test_mode=True),
)
test_dataloader = val_dataloader  # a copy: a config that sets one split's data_root leaves the other's alone
val_evaluator = dict(type='TokenPredictionMetric', num_bins=8)
test_evaluator = val_evaluator
