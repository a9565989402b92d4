# SpectralAR-d16 (paper Table 2: gFID 3.02 with 50k samples): VAR's d16 recipe on extracted ImageNet tokens.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/token_folders.py',
    '../_base_/models/spectralar_generator_d16.py',
    '../_base_/schedules/generator_adamw_linear.py',
]
# ImageNet-1k tokens of the SpectralAR-B tokenizer (docs/get_started.md, section Generators, extracts them).
train_dataloader = dict(batch_size=96, dataset=dict(data_root='data/tokens/spectralar-b_64tok_in1k_train'))
val_dataloader = dict(batch_size=96, dataset=dict(data_root='data/tokens/spectralar-b_64tok_in1k_val'))
test_dataloader = dict(batch_size=96, dataset=dict(data_root='data/tokens/spectralar-b_64tok_in1k_val'))
