# VAR's generator recipe, with one departure (below): AdamW (0.9, 0.95), weight decay 0.05 except on 1-D
# parameters, biases, learned positions and embedding tables, peak lr 1e-4 * batch / 256 (here 768: 3e-4),
# linear warm-up over the first 2% (VAR: ep / 50 epochs from 0.005x), then linear decay to 0.1x, grad clip
# 2.0, bf16 autocast on GPU. 333k iterations at batch 768 are VAR-d16's 200 ImageNet epochs.
# The departure: VAR decays its class embedding (class_emb, an nn.Embedding) and its word embedding
# (word_embed, a linear map of VQ features there); it exempts 1-D parameters, biases and names containing
# lvl_embed, pos_start, pos_1LC, scale_mul and a few others (nowd_keys in its train.py,
# utils/lr_control.filter_params). Here every embedding table is exempt: class_emb, word_embed (a table of
# the codes here) and lvl_embed. Why: a row of a table gets a gradient only in the steps whose batch holds
# its class or code, while decoupled decay shrinks every row at every step, so rare classes and codes are
# pulled towards zero more, for the gradient they get, than common ones (minGPT's convention; LlamaGen, like
# nanoGPT, decays every parameter of 2 or more dims, tables included). The effect of the choice is not
# measured here (docs/design.md, "Generator"); changing it changes every seeded generator run, the quick
# start's included.
optim_wrapper = dict(
    type='AutocastOptimWrapper',  # bf16 autocast without loss scaling, on GPUs and on CPUs with native bf16
    dtype='auto',  # fp32 on a CPU without native bf16 (emulated bf16 is ~100x slower); 'bfloat16' forces it
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True),
    clip_grad=dict(max_norm=2.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            'embed': dict(decay_mult=0.0),  # word_embed, lvl_embed
            'class_emb': dict(decay_mult=0.0),
            'pos_start': dict(decay_mult=0.0),
            'pos_1LC': dict(decay_mult=0.0),
            'scale_mul': dict(decay_mult=0.0),
        },
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.005, by_epoch=False, begin=0, end=6670),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.1, by_epoch=False, begin=6670, end=333000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=333000, val_interval=16700)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
