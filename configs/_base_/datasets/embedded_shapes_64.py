# The embedded default dataset at 64x64.
_base_ = ['./embedded_shapes_32.py']
train_dataloader = dict(batch_size=32, dataset=dict(image_size=64))
val_dataloader = dict(batch_size=32, dataset=dict(image_size=64))
test_dataloader = dict(batch_size=32, dataset=dict(image_size=64))
