#!/usr/bin/env bash
# The paper's Table 4 at a size this machine runs: the four tokenizer rows (TiTok tokens; + spectral supervision;
# + causal mask; + non-uniform schedule = SpectralAR) on EmbeddedShapes at 64 px with 16 tokens, each followed by
# the same tiny generator, judged by the EmbeddedShapes probe (class accuracy, Frechet distance and precision /
# recall in its feature space; tools/train_probe.py), plus a fifth row, nested prefixes with full-image targets.
# Each row also gets its tokenizer's own ceiling (the same judge on its reconstructions). The generators sample
# at their config's cfg 3; in the measured run they reached that ceiling in every row, so the table compared the
# tokenizers' reconstructions, not how easily a generator learns each row's tokens (docs/results.md, "Table 4 at
# tiny scale"; the latter is docs/design.md, "Table 4 as an experiment").
#
#   bash tools/analysis/ablation_tiny.sh            # all five rows x 2 seeds, about 13 minutes per row and seed
#                                                   # on 2 cores
#   ROWS="nospectral full" bash tools/analysis/ablation_tiny.sh
#   ROWS=nested bash tools/analysis/ablation_tiny.sh  # nested prefixes with full-image targets (no peer reports it)
#   ROWS=fullfrac bash tools/analysis/ablation_tiny.sh  # SpectralAR with half the samples decoding all tokens
#
# Per row and seed (SEEDS, default "0 1"), in $WORK_DIR/<row>/seed<S>/: tokenizer/ (training), tokens/{train,val},
# generator/, samples/ (tools/sample.py: PNGs + npz), samples/probe.json, tokenizer_ceiling.json (the tokenizer
# alone: tools/analysis/ablation_row_metrics.py). A finished stage is skipped, so the command continues an
# interrupted run. Shorter runs: TOKENIZER_ITERS, GENERATOR_ITERS, NUM_TRAIN_IMAGES, NUM_VAL_IMAGES, PER_CLASS,
# NUM_CEILING_IMAGES. CLASS_SET=fine runs it on the EmbeddedShapes 'fine' classes instead of the configs' 'coarse'
# ones (docs/results.md's current table is on 'coarse'; its earliest rows, kept for the record, were on 'fine').
# The TiTok-tokens and nested rows train every prefix towards the whole image: the low-pass images in their
# tokenizer_ceiling.json are a reference, never their targets (prefix_targets, lowpass_targets_note).
# The summary table goes to $WORK_DIR/table4.md (and is printed).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$REPO_ROOT/tools/setup_env.sh"
cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
PY="$MMSPECTRAL_PYTHON"
WORK_DIR=${WORK_DIR:-work_dirs/ablation_tiny}
ROWS=${ROWS:-nospectral nomask uniform full nested}
TOKENIZER_ITERS=${TOKENIZER_ITERS:-5000}
GENERATOR_ITERS=${GENERATOR_ITERS:-1000}
NUM_TRAIN_IMAGES=${NUM_TRAIN_IMAGES:-10000}
NUM_VAL_IMAGES=${NUM_VAL_IMAGES:-500}
PER_CLASS=${PER_CLASS:-50}
SEEDS=${SEEDS:-0 1}
NUM_CEILING_IMAGES=${NUM_CEILING_IMAGES:-500}
CLASS_SET=${CLASS_SET:-coarse}
PROBE="$WORK_DIR/shapes_probe_${CLASS_SET}_64px.pth"
DATA_OPTIONS=("train_dataloader.dataset.class_set=$CLASS_SET" "val_dataloader.dataset.class_set=$CLASS_SET"
              "test_dataloader.dataset.class_set=$CLASS_SET")
mkdir -p "$WORK_DIR"

configs() {  # row -> "tokenizer_config generator_config"
    local tok=configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py
    local gen=configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py
    if [ "$1" != full ]; then
        tok=configs/spectralar/ablation/$(basename "$tok" .py)_$1.py
        gen=configs/spectralar/ablation/$(basename "$gen" .py)_$1.py
    fi
    echo "$tok $gen"
}

train() {  # config work_dir iters [cfg-options...]: both tiny configs warm up 100 steps, then decay to the end
    local config=$1 dir=$2 iters=$3
    shift 3
    local warmup=$(( iters >= 1000 ? 100 : iters / 10 + 1 ))
    "$PY" tools/train.py "$config" --work-dir "$dir" --resume auto --cfg-options "train_cfg.max_iters=$iters" \
        "train_cfg.val_interval=$iters" "param_scheduler.0.end=$warmup" "param_scheduler.1.begin=$warmup" \
        "param_scheduler.1.end=$iters" "$@" > "$dir.log" 2>&1 || { echo "training $config failed: $dir.log" >&2; exit 1; }
}

"$PY" tools/train_probe.py --out "$PROBE" --class-set "$CLASS_SET"
for row in $ROWS; do
    read -r TOK_CFG GEN_CFG <<< "$(configs "$row")"
    [ -f "$TOK_CFG" ] && [ -f "$GEN_CFG" ] || { echo "unknown row $row (nospectral, nomask, uniform, full, nested, fullfrac)" >&2; exit 2; }
    for seed in $SEEDS; do
    dir="$WORK_DIR/$row/seed$seed"
    mkdir -p "$dir"
    seeded=("randomness.seed=$seed")
    tok_ckpt="$dir/tokenizer/iter_$TOKENIZER_ITERS.pth"
    gen_ckpt="$dir/generator/iter_$GENERATOR_ITERS.pth"
    echo "[ablation] $row, seed $seed: tokenizer $TOK_CFG"
    [ -f "$tok_ckpt" ] || train "$TOK_CFG" "$dir/tokenizer" "$TOKENIZER_ITERS" "${DATA_OPTIONS[@]}" "${seeded[@]}"
    [ -f "$dir/tokens/train/meta.json" ] || "$PY" tools/extract_tokens.py "$TOK_CFG" "$tok_ckpt" \
        --out "$dir/tokens/train" --split train --augment flip --num-workers 1 \
        --cfg-options "train_dataloader.dataset.num_samples=$NUM_TRAIN_IMAGES" "${DATA_OPTIONS[@]}"
    [ -f "$dir/tokens/val/meta.json" ] || "$PY" tools/extract_tokens.py "$TOK_CFG" "$tok_ckpt" \
        --out "$dir/tokens/val" --split val --num-workers 0 \
        --cfg-options "val_dataloader.dataset.num_samples=$NUM_VAL_IMAGES" "${DATA_OPTIONS[@]}"
    options=("model.tokenizer_checkpoint=$tok_ckpt" "train_dataloader.dataset.data_root=$dir/tokens/train"
             "val_dataloader.dataset.data_root=$dir/tokens/val" "test_dataloader.dataset.data_root=$dir/tokens/val")
    echo "[ablation] $row, seed $seed: generator $GEN_CFG"
    [ -f "$gen_ckpt" ] || train "$GEN_CFG" "$dir/generator" "$GENERATOR_ITERS" "${options[@]}" "${seeded[@]}"
    "$PY" tools/sample.py "$GEN_CFG" "$gen_ckpt" --out "$dir/samples" --per-class "$PER_CLASS" --batch-size 100 \
        --seed "$seed" --cfg-options "${options[@]}" > "$dir/samples.log" 2>&1 \
        || { echo "sampling failed: $dir/samples.log" >&2; exit 1; }
    "$PY" tools/train_probe.py --out "$PROBE" --samples "$(ls "$dir"/samples/samples_*.npz)" \
        --json "$dir/samples/probe.json" > /dev/null
    # The tokenizer on its own (its ceiling for the generator): the probe on its reconstructions, fidelity,
    # PSNR per DCT band, perplexity per position.
    "$PY" tools/analysis/ablation_row_metrics.py "$GEN_CFG" "$gen_ckpt" --probe "$PROBE" \
        --out "$dir/tokenizer_ceiling.json" --class-set "$CLASS_SET" --num-images "$NUM_CEILING_IMAGES" \
        --cfg-options "${options[@]}"
    done
done

"$PY" - "$WORK_DIR" "$SEEDS" $ROWS <<'PY'
import json, os, statistics, sys
work, seeds, rows = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
names = dict(nospectral='TiTok tokens', nomask='+ spectral supervision', uniform='+ causal mask',
             full='+ non-uniform schedule (SpectralAR)', nested='nested prefixes, full-image targets',
             fullfrac='SpectralAR, half the samples decode all tokens')


def cell(values, digits):
    """mean, and the range over seeds when there are several"""
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})'


head = ['row', 'PSNR (dB)', 'object / background PSNR', 'blockiness', 'object colour error',
        'judge: reconstructions', 'judge: samples', 'samples / reconstructions', 'probe FD: reconstructions',
        'probe FD: samples', 'sample precision / recall', 'perplexity, positions 1-4 / 5-8 / 9-12 / 13-16']
lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
bands, progression, marks = [], [], []
for row in rows:
    runs = []
    for seed in seeds:
        d = os.path.join(work, row, f'seed{seed}')
        runs.append((json.load(open(os.path.join(d, 'tokenizer_ceiling.json'))),
                     json.load(open(os.path.join(d, 'samples', 'probe.json')))))
    get = lambda f: [f(c, s) for c, s in runs]  # noqa: E731
    quarters = []
    for q in range(4):
        quarters.append(get(lambda c, s: statistics.fmean(c['position_perplexity'][
            q * len(c['position_perplexity']) // 4:(q + 1) * len(c['position_perplexity']) // 4])))
    lines.append('| ' + ' | '.join([
        names[row], cell(get(lambda c, s: c['fidelity']['psnr']), 2),
        cell(get(lambda c, s: c['fidelity']['psnr_object']), 2) + ' / '
        + cell(get(lambda c, s: c['fidelity']['psnr_background']), 2),
        cell(get(lambda c, s: c['fidelity']['blockiness']), 2),
        cell(get(lambda c, s: c['fidelity']['object_colour_error']), 3),
        cell(get(lambda c, s: c['reconstructions']['class_accuracy']), 3),
        cell(get(lambda c, s: s['class_accuracy']), 3),
        cell(get(lambda c, s: s['class_accuracy'] / max(c['reconstructions']['class_accuracy'], 1e-9)), 2),
        cell(get(lambda c, s: c['reconstructions']['probe_fd']), 2), cell(get(lambda c, s: s['probe_fd']), 2),
        cell(get(lambda c, s: s['probe_precision']), 3) + ' / ' + cell(get(lambda c, s: s['probe_recall']), 3),
        ' / '.join(cell(v, 0) for v in quarters)]) + ' |')
    prog = [c.get('progression') for c, s in runs]
    if all(prog):
        n = len(prog[0]['samples']['step_change']) + 1
        marks = sorted({1, n // 4, n // 2, 3 * n // 4, n})
        progression.append('| ' + ' | '.join([
            names[row], cell([p['samples']['visible_steps'] for p in prog], 0) + ' / '
            + cell([p['reconstructions']['visible_steps'] for p in prog], 0)]
            + [cell([p['reconstructions']['psnr_to_image'][k - 1] for p in prog], 2) for k in marks]) + ' |')
    band_names = list(runs[0][0]['band_psnr'])
    bands.append('| ' + names[row] + ' | ' + ' | '.join(
        cell(get(lambda c, s, b=b: c['band_psnr'][b]), 1) for b in band_names) + ' |')
table = '\n'.join(lines) + '\n\nPSNR of the full decode per DCT band (dB; a band holding less error scores higher):\n\n'
table += '| row | ' + ' | '.join(band_names) + ' |\n|' + '---|' * (len(band_names) + 1) + '\n'
table += '\n'.join(bands) + '\n'
if progression:
    table += (f'\nProgression: of the {n - 1} steps from prefix k - 1 to k, how many change the decode '
              'visibly (mean |change| >= 2/255; samples / reconstructions of real images), and the reconstructions\' PSNR (dB) '
              'against the image from the first k tokens:\n\n| row | visible steps | '
              + ' | '.join(f'PSNR k={k}' for k in marks) + ' |\n|' + '---|' * (len(marks) + 2) + '\n'
              + '\n'.join(progression) + '\n')
table += f'\nSeeds: {" ".join(seeds)} (mean, and the range over seeds in brackets).\n'
open(os.path.join(work, 'table4.md'), 'w').write(table)
print(table)
PY
