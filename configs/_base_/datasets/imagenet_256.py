# ImageNet-1k at 256x256 for tokenizers, the TiTok / ADM preprocessing: shorter side to 256 (bicubic with
# antialiasing), random crop and flip for training, centre crop for evaluation; uint8 until the model's data
# preprocessor maps it to the value range. Layout: data/imagenet/train/<wnid>/*.JPEG, data/imagenet/val/*.JPEG with
# data/imagenet/meta/val.txt ("ILSVRC2012_val_00000001.JPEG 65" per line). See docs/get_started.md.
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='ImageFolderDataset',
        data_root='data/imagenet',
        data_prefix=dict(img_path='train'),
        pipeline=[
            dict(type='LoadImage'),
            dict(type='ResizeShorter', size=256, interpolation='bicubic'),
            dict(type='RandomCrop', crop_size=256),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackImageInputs'),
        ],
    ),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ImageFolderDataset',
        data_root='data/imagenet',
        data_prefix=dict(img_path='val'),
        ann_file='meta/val.txt',
        test_mode=True,
        pipeline=[
            dict(type='LoadImage'),
            dict(type='ResizeShorter', size=256, interpolation='bicubic'),
            dict(type='CenterCrop', crop_size=256),
            dict(type='PackImageInputs'),
        ],
    ),
)
test_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ImageFolderDataset',
        data_root='data/imagenet',
        data_prefix=dict(img_path='val'),
        ann_file='meta/val.txt',
        test_mode=True,
        pipeline=[
            dict(type='LoadImage'),
            dict(type='ResizeShorter', size=256, interpolation='bicubic'),
            dict(type='CenterCrop', crop_size=256),
            dict(type='PackImageInputs'),
        ],
    ),
)
