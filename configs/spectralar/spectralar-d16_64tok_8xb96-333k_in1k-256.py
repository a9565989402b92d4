# SpectralAR-d16 (paper Table 2: gFID 3.02 with 50k samples): VAR's d16 recipe on extracted ImageNet tokens.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/imagenet_tokens.py',
    '../_base_/models/spectralar_generator_d16.py',
    '../_base_/schedules/generator_adamw_linear.py',
]
