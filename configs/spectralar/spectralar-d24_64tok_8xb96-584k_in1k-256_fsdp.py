# SpectralAR-d24 (1.0B) with FSDP instead of DDP: the same recipe, with sharded weights, gradients and AdamW
# states. Multi-node and SLURM commands, checkpoint conversion for sampling: docs/distributed.md.
_base_ = [
    './spectralar-d24_64tok_8xb96-584k_in1k-256.py',
    '../_base_/schedules/generator_fsdp.py',
]
runner_type = 'SpectralFlexibleRunner'
