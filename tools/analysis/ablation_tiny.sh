#!/usr/bin/env bash
# The paper's Table 4 at a size this machine runs: the four tokenizer rows (TiTok tokens; + spectral supervision;
# + causal mask; + non-uniform schedule = SpectralAR) on EmbeddedShapes at 64 px with 16 tokens, each followed by
# the same tiny generator, judged by the EmbeddedShapes probe (class accuracy, Frechet distance and precision /
# recall in its feature space; tools/train_probe.py).
#
#   bash tools/analysis/ablation_tiny.sh            # all four rows, about 15 minutes each on 2 CPU cores
#   ROWS="nospectral full" bash tools/analysis/ablation_tiny.sh
#   ROWS=nested bash tools/analysis/ablation_tiny.sh  # nested prefixes with full-image targets (no peer reports it)
#
# Per row, in $WORK_DIR/<row>/: tokenizer/ (training), tokens/{train,val}, generator/, samples/ (tools/sample.py:
# PNGs + npz), samples/*_probe.json. A finished stage is skipped, so the command continues an interrupted run.
# Shorter runs: TOKENIZER_ITERS, GENERATOR_ITERS, NUM_TRAIN_IMAGES, PER_CLASS. CLASS_SET=fine runs it on the
# EmbeddedShapes 'fine' classes instead of the configs' 'coarse' ones (docs/results.md was measured on 'fine').
# The summary table goes to $WORK_DIR/table4.md (and is printed).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$REPO_ROOT/tools/setup_env.sh"
cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
PY="$MMSPECTRAL_PYTHON"
WORK_DIR=${WORK_DIR:-work_dirs/ablation_tiny}
ROWS=${ROWS:-nospectral nomask uniform full}
TOKENIZER_ITERS=${TOKENIZER_ITERS:-5000}
GENERATOR_ITERS=${GENERATOR_ITERS:-1000}
NUM_TRAIN_IMAGES=${NUM_TRAIN_IMAGES:-10000}
NUM_VAL_IMAGES=${NUM_VAL_IMAGES:-500}
PER_CLASS=${PER_CLASS:-50}
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
    [ -f "$TOK_CFG" ] && [ -f "$GEN_CFG" ] || { echo "unknown row $row (nospectral, nomask, uniform, full, nested)" >&2; exit 2; }
    dir="$WORK_DIR/$row"
    mkdir -p "$dir"
    tok_ckpt="$dir/tokenizer/iter_$TOKENIZER_ITERS.pth"
    gen_ckpt="$dir/generator/iter_$GENERATOR_ITERS.pth"
    echo "[ablation] $row: tokenizer $TOK_CFG"
    [ -f "$tok_ckpt" ] || train "$TOK_CFG" "$dir/tokenizer" "$TOKENIZER_ITERS" "${DATA_OPTIONS[@]}"
    [ -f "$dir/tokens/train/meta.json" ] || "$PY" tools/extract_tokens.py "$TOK_CFG" "$tok_ckpt" \
        --out "$dir/tokens/train" --split train --augment flip --num-workers 1 \
        --cfg-options "train_dataloader.dataset.num_samples=$NUM_TRAIN_IMAGES" "${DATA_OPTIONS[@]}"
    [ -f "$dir/tokens/val/meta.json" ] || "$PY" tools/extract_tokens.py "$TOK_CFG" "$tok_ckpt" \
        --out "$dir/tokens/val" --split val --num-workers 0 \
        --cfg-options "val_dataloader.dataset.num_samples=$NUM_VAL_IMAGES" "${DATA_OPTIONS[@]}"
    options=("model.tokenizer_checkpoint=$tok_ckpt" "train_dataloader.dataset.data_root=$dir/tokens/train"
             "val_dataloader.dataset.data_root=$dir/tokens/val" "test_dataloader.dataset.data_root=$dir/tokens/val")
    echo "[ablation] $row: generator $GEN_CFG"
    [ -f "$gen_ckpt" ] || train "$GEN_CFG" "$dir/generator" "$GENERATOR_ITERS" "${options[@]}"
    "$PY" tools/sample.py "$GEN_CFG" "$gen_ckpt" --out "$dir/samples" --per-class "$PER_CLASS" --batch-size 100 \
        --cfg-options "${options[@]}" > "$dir/samples.log" 2>&1 || { echo "sampling failed: $dir/samples.log" >&2; exit 1; }
    "$PY" tools/train_probe.py --out "$PROBE" --samples "$(ls "$dir"/samples/samples_*.npz)" \
        --json "$dir/samples/probe.json" > /dev/null
    # The tokenizer on its own: PSNR of its full reconstructions of 200 validation images.
    "$PY" - "$GEN_CFG" "$gen_ckpt" "$dir/tokenizer_val.json" "$CLASS_SET" "${options[@]}" <<'PY'
import json, sys, torch
from mmspectral.apis import init_generator
from mmspectral.evaluation.embedded_classifier import render_batch
from mmspectral.evaluation.functional import psnr
config, ckpt, out, class_set, options = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
model = init_generator(config, ckpt, cfg_options=dict(o.split('=', 1) for o in options))
images, _ = render_batch(range(200), model.tokenizer.image_size, seed=1, class_set=class_set)
with torch.no_grad():
    recon = torch.cat([model.decode(model.encode(images[i:i + 50])) for i in range(0, 200, 50)])
value = float(psnr((recon * 255).round() / 255, images).mean())
json.dump({'recon/psnr': value}, open(out, 'w'), indent=1)
PY
done

"$PY" - "$WORK_DIR" $ROWS <<'PY'
import json, os, sys
work, rows = sys.argv[1], sys.argv[2:]
names = dict(nospectral='TiTok tokens', nomask='+ spectral supervision', uniform='+ causal mask',
             full='+ non-uniform schedule (SpectralAR)',
             nested='nested prefixes, full-image targets')
lines = ['| row | tokenizer PSNR (dB, all tokens) | class accuracy | probe FD | probe precision | probe recall |',
         '|---|---|---|---|---|---|']
for row in rows:
    probe = json.load(open(os.path.join(work, row, 'samples', 'probe.json')))
    tok = json.load(open(os.path.join(work, row, 'tokenizer_val.json')))
    lines.append(f"| {names[row]} | {tok.get('recon/psnr', float('nan')):.2f} | {probe['class_accuracy']:.3f} | "
                 f"{probe['probe_fd']:.2f} | {probe['probe_precision']:.3f} | {probe['probe_recall']:.3f} |")
table = '\n'.join(lines) + '\n'
open(os.path.join(work, 'table4.md'), 'w').write(table)
print(table)
PY
