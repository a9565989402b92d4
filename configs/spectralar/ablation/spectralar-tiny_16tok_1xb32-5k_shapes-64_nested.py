# Tiny ablation on EmbeddedShapes: nested prefixes with full-image targets (the SpectralAR tokenizer with
# spectral_supervision=False: causal mask, prefix length uniform per sample, every prefix trained towards the
# whole image, as nested-dropout 1D tokenizers do). The cell between Table 4's rows that separates the cost of
# the low-pass targets from the cost of nesting. Its schedule (eq. 9) only gives evaluation low-pass images;
# this row never trains towards them.
_base_ = ['../spectralar-tiny_16tok_1xb32-5k_shapes-64.py']
model = dict(tokenizer=dict(spectral_supervision=False))
