# Tiny ablation on EmbeddedShapes, beyond Table 4: SpectralAR's tokenizer with half the samples of every
# batch decoding all 16 tokens (prefix_sampling.full_fraction=0.5; the rest keep k uniform in 1..16). With
# plain uniform k, token j is decoded only in the samples with k >= j, so the last token trains in 1/16 of
# them; the tiny spectral rows spend few codes at positions 9-16 (perplexity 17-36 against 90-175 at 1-8:
# docs/results.md, Table 4 at tiny scale). This row measures whether more full-length decodes make the late
# tokens carry detail (one seed so far). The quick start trains its tokenizer this way, for 8,000 steps.
_base_ = ['../spectralar-tiny_16tok_1xb32-5k_shapes-64.py']
model = dict(tokenizer=dict(prefix_sampling=dict(distribution='uniform', per_sample=True, min_length=1,
                                                 full_fraction=0.5)))
