# Sharded data parallel (FSDP) for the large generators, with MMEngine's FlexibleRunner: parameters,
# gradients and optimizer states are split over the GPUs. An experiment that lists this base also sets
# runner_type = 'SpectralFlexibleRunner' (docs/distributed.md). Results equal DDP's; memory and speed differ.
strategy = dict(
    type='SpectralFSDPStrategy',
    # 'full': rank 0 gathers the weights and writes one ordinary checkpoint, which tools/sample.py, --resume
    # and load_from read as they read DDP checkpoints. 'local' writes one file per rank into a folder (faster
    # for 2B+ models); tools/model_converters/fsdp_to_single.py turns such a folder into one file.
    state_dict_cfg='full',
    model_wrapper=dict(
        # Each AdaLN block's ada_lin, attn and ffn is one FSDP unit (mmspectral/engine/fsdp_runner.py says why).
        auto_wrap_policy=dict(type='adaln_block_wrap_policy'),
        use_orig_params=True,
        sharding_strategy='FULL_SHARD',
    ),
)
