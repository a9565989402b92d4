#!/usr/bin/env bash
# Quick start (1): set up the environment if needed, then run the whole SpectralAR pipeline on the embedded
# EmbeddedShapes dataset (64 px, its 10 'coarse' classes, 16 tokens), 10-15 minutes on 2 idle CPU cores (886 s on
# 2026-12-06; docs/results.md, "The full quick start"):
#   1. the spectral decomposition figures (what each token prefix reconstructs under the eq. 9 schedule);
#   2. train the tiny nested spectral tokenizer (reconstruction grid, PSNR-vs-k plot, metrics);
#   3. encode the training and validation images into token files (tools/extract_tokens.py);
#   4. train the tiny class-conditional SpectralAR generator on those tokens;
#   5. sample a class-by-class grid and a coarse-to-fine progression figure, measure how often samples are of
#      the class asked for (a small classifier trained on real images judges), and write metrics.json.
# Outputs go to work_dirs/quickstart/ (override with WORK_DIR=...). A stage whose result exists is skipped, and
# an interrupted stage resumes from its last checkpoint, so running the command again continues the pipeline.
# Shorter runs for a smoke test: TOKENIZER_ITERS, GENERATOR_ITERS, NUM_TRAIN_IMAGES, NUM_VAL_IMAGES,
# SAMPLES_PER_CLASS, ACCURACY_PER_CLASS.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO_ROOT/tools/setup_env.sh"
cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
WORK_DIR=${WORK_DIR:-work_dirs/quickstart}
PY="$MMSPECTRAL_PYTHON"
TOKENIZER_CONFIG=configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py
GENERATOR_CONFIG=configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py
# Half of every batch decodes all 16 tokens, the rest a uniform prefix length: with uniform k alone tokens 9-16 use
# few codes and add little to the decode (docs/design.md, "Where the tiny nested tokenizers lose"); the one-seed
# fullfrac row of the tiny Table 4 gained 0.4 dB with it. FULL_FRACTION=0 trains the config as it is (the tiny
# Table 4's SpectralAR row).
FULL_FRACTION=${FULL_FRACTION:-0.5}
TOKENIZER_OPTIONS=("model.tokenizer.prefix_sampling.full_fraction=$FULL_FRACTION")
TOKENIZER_ITERS=${TOKENIZER_ITERS:-8000}
GENERATOR_ITERS=${GENERATOR_ITERS:-1000}
NUM_TRAIN_IMAGES=${NUM_TRAIN_IMAGES:-10000}
NUM_VAL_IMAGES=${NUM_VAL_IMAGES:-500}
SAMPLES_PER_CLASS=${SAMPLES_PER_CLASS:-8}
ACCURACY_PER_CLASS=${ACCURACY_PER_CLASS:-20}
TOKENIZER_CKPT="$WORK_DIR/tokenizer/iter_$TOKENIZER_ITERS.pth"
GENERATOR_CKPT="$WORK_DIR/generator/iter_$GENERATOR_ITERS.pth"
# What the stages of this work dir were made with: a work dir of another pipeline (an older quick start trained
# on the 'fine' classes, or one whose tokenizer had the per-patch decoder head) would mix its checkpoints into
# this run, since finished stages are skipped.
PIPELINE="EmbeddedShapes class_set=coarse, 64 px, 16 tokens, convolutional decoder head, full_fraction $FULL_FRACTION; $TOKENIZER_CONFIG; $GENERATOR_CONFIG"
STAMP="$WORK_DIR/quickstart_pipeline.txt"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" != "$PIPELINE" ]; then
    echo "[quickstart] $WORK_DIR was made by another quick start ($(cat "$STAMP")); this one runs: $PIPELINE." \
         "Use another WORK_DIR=... or delete $WORK_DIR." >&2
    exit 2
elif [ ! -f "$STAMP" ] && [ -d "$WORK_DIR/tokenizer" ]; then
    echo "[quickstart] $WORK_DIR holds the stages of an earlier quick start (trained on other EmbeddedShapes" \
         "classes); use another WORK_DIR=... or delete $WORK_DIR." >&2
    exit 2
fi
mkdir -p "$WORK_DIR"
echo "$PIPELINE" > "$STAMP"
START=$(date +%s)
stage_times=()

stage_done() {  # name: record the wall time of the stage that just ended
    local now
    now=$(date +%s)
    stage_times+=("$1=$((now - ${STAGE_START:-$START}))")
    STAGE_START=$now
}

train() {  # config work_dir iters [cfg-options...]: train with progress lines only; resume after an interruption
    local config=$1 dir=$2 iters=$3
    shift 3
    # Both tiny configs warm up for 100 iterations, then decay until the end: a shortened run keeps that shape.
    local warmup=$(( iters >= 1000 ? 100 : iters / 10 + 1 ))
    set +e
    "$PY" tools/train.py "$config" --work-dir "$dir" --resume auto --cfg-options "train_cfg.max_iters=$iters" \
        "train_cfg.val_interval=$iters" "param_scheduler.0.end=$warmup" "param_scheduler.1.begin=$warmup" \
        "param_scheduler.1.end=$iters" "$@" 2>&1 | grep --line-buffered -E "Iter\(train\) \[ *[0-9]*[05]00/|Iter\(val\)|Error|Traceback|problem" \
        | while IFS= read -r line; do printf '%s\n' "${line:0:240}"; done  # each line as it comes
    local status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
        echo "[quickstart] training $config failed (exit $status); the full log is in $dir/" >&2
        exit "$status"
    fi
}

STAGE_START=$START
echo "[quickstart] 1/5 spectral decomposition figures"
"$PY" tools/analysis/visualize_spectral.py --out "$WORK_DIR/spectral_photo_256px_64tok.png"
for cls in 1 6 9; do  # ring, plus, quad
    "$PY" tools/analysis/visualize_spectral.py --embedded-class "$cls" --class-set coarse --image-size 64 \
        --num-tokens 16 --prefixes 1 2 4 6 8 10 12 16 --out "$WORK_DIR/spectral_embedded_class$cls.png"
done
stage_done spectral_figures

echo "[quickstart] 2/5 training the tiny nested spectral tokenizer (log: $WORK_DIR/tokenizer/*/*.log)"
if [ -f "$TOKENIZER_CKPT" ]; then
    echo "[quickstart] $TOKENIZER_CKPT exists; skipping"
else
    train "$TOKENIZER_CONFIG" "$WORK_DIR/tokenizer" "$TOKENIZER_ITERS" "${TOKENIZER_OPTIONS[@]}"
fi
cp "$WORK_DIR/tokenizer/vis/val_reconstructions.png" "$WORK_DIR/tokenizer_reconstructions.png"
cp "$WORK_DIR/tokenizer/vis/val_psnr_vs_k.png" "$WORK_DIR/tokenizer_psnr_vs_k.png"
stage_done tokenizer

echo "[quickstart] 3/5 encoding $NUM_TRAIN_IMAGES training images (and their flips) and $NUM_VAL_IMAGES validation images"
"$PY" tools/extract_tokens.py "$TOKENIZER_CONFIG" "$TOKENIZER_CKPT" --out "$WORK_DIR/tokens/train" --split train \
    --augment flip --num-workers 1 --cfg-options "train_dataloader.dataset.num_samples=$NUM_TRAIN_IMAGES"
"$PY" tools/extract_tokens.py "$TOKENIZER_CONFIG" "$TOKENIZER_CKPT" --out "$WORK_DIR/tokens/val" --split val \
    --num-workers 0 --cfg-options "val_dataloader.dataset.num_samples=$NUM_VAL_IMAGES"
stage_done token_extraction

GENERATOR_OPTIONS=("model.tokenizer_checkpoint=$TOKENIZER_CKPT"
                   "train_dataloader.dataset.data_root=$WORK_DIR/tokens/train"
                   "val_dataloader.dataset.data_root=$WORK_DIR/tokens/val"
                   "test_dataloader.dataset.data_root=$WORK_DIR/tokens/val")
echo "[quickstart] 4/5 training the tiny SpectralAR generator (log: $WORK_DIR/generator/*/*.log)"
if [ -f "$GENERATOR_CKPT" ]; then
    echo "[quickstart] $GENERATOR_CKPT exists; skipping"
else
    train "$GENERATOR_CONFIG" "$WORK_DIR/generator" "$GENERATOR_ITERS" "${GENERATOR_OPTIONS[@]}"
fi
stage_done generator

echo "[quickstart] 5/5 sampling: class grid, coarse-to-fine progression, metrics"
"$PY" tools/analysis/visualize_generation.py "$GENERATOR_CONFIG" "$GENERATOR_CKPT" --out-dir "$WORK_DIR" \
    --per-class "$SAMPLES_PER_CLASS" --cfg-options "${GENERATOR_OPTIONS[@]}"
"$PY" tools/analysis/shapes_class_accuracy.py "$GENERATOR_CONFIG" "$GENERATOR_CKPT" --per-class "$ACCURACY_PER_CLASS" \
    --classifier "$WORK_DIR/shapes_classifier_coarse_64px.pth" --out "$WORK_DIR/class_accuracy.json" \
    --cfg-options "${GENERATOR_OPTIONS[@]}"
stage_done sampling

"$PY" - "$WORK_DIR" "${stage_times[@]}" <<'PY'
import glob, json, os, sys
work, times = sys.argv[1], dict(t.split('=') for t in sys.argv[2:])


def last_val(run):
    logs = sorted(glob.glob(os.path.join(work, run, '*', 'vis_data', 'scalars.json')))
    rows = [json.loads(line) for path in logs for line in open(path)]
    rows = [r for r in rows if 'step' in r and not any(k in r for k in ('loss', 'lr'))]
    return rows[-1] if rows else {}


tokenizer, generator = last_val('tokenizer'), last_val('generator')
with open(os.path.join(work, 'class_accuracy.json')) as f:
    class_accuracy = json.load(f)
fidelity = class_accuracy.pop('reconstruction_fidelity', {})
progression = class_accuracy.pop('progression', {})
metrics = dict(tokenizer=tokenizer, generator=generator, class_accuracy=class_accuracy,
               tokenizer_fidelity=fidelity, progression=progression,
               stage_seconds={k: int(v) for k, v in times.items()},
               total_seconds=sum(int(v) for v in times.values()))
with open(os.path.join(work, 'metrics.json'), 'w') as f:
    json.dump(metrics, f, indent=1)
print('[quickstart] tokenizer: PSNR {:.2f} dB with all tokens; vs low-pass target per prefix: {}'.format(
    tokenizer.get('recon/psnr', float('nan')), ', '.join(
        f"k={k.rsplit('k', 1)[1]}: {v:.1f}" for k, v in tokenizer.items() if k.startswith('recon/psnr_lowpass/'))))
print('[quickstart] tokenizer on {num_images} validation images: blockiness {blockiness:.2f} (real images '
      '{blockiness_real_images:.2f}), object colour error {object_colour_error:.3f}, PSNR object '
      '{psnr_object:.2f} dB, background {psnr_background:.2f} dB'.format(**fidelity))
steps = progression['samples']
print('[quickstart] progression of the samples: {} of {} steps k-1 -> k change visibly (mean |change| >= '
      '{:.4f}; the real images\' low-pass targets: {} of {})'.format(
          steps['visible_steps'], len(steps['step_change']), steps['visible'],
          progression['lowpass_targets']['visible_steps'], len(progression['lowpass_targets']['step_change'])))
print('[quickstart] generator: validation next-token accuracy {:.3f}, cross-entropy {:.3f}'.format(
    *(generator.get(k, float('nan')) for k in ('tokens/acc', 'tokens/ce'))))
print('[quickstart] stage times (s): ' + ', '.join(f'{k} {v}' for k, v in times.items()) +
      f"; total {metrics['total_seconds']} s")
PY
# The two trained models as folders (config, safetensors weights, model card) for mmspectral.apis and the demo.
"$PY" tools/model_converters/publish_model.py "$TOKENIZER_CONFIG" "$TOKENIZER_CKPT" "$WORK_DIR/models/tokenizer" \
    --overwrite --metrics "$WORK_DIR/metrics.json" --metrics-keys tokenizer tokenizer_fidelity \
    --title "Quick-start tiny nested spectral tokenizer (EmbeddedShapes coarse, 64 px, 16 tokens)" \
    --reproduce "bash tools/quickstart.sh" --cfg-options "${TOKENIZER_OPTIONS[@]}"
"$PY" tools/model_converters/publish_model.py "$GENERATOR_CONFIG" "$GENERATOR_CKPT" "$WORK_DIR/models/generator" \
    --overwrite --metrics "$WORK_DIR/metrics.json" --metrics-keys generator class_accuracy \
    --title "Quick-start tiny SpectralAR generator (EmbeddedShapes coarse, 64 px, 16 tokens)" \
    --reproduce "bash tools/quickstart.sh" --cfg-options "${GENERATOR_OPTIONS[@]}"
echo "[quickstart] done: $WORK_DIR/{class_grid.png,progression.png,metrics.json,tokenizer_reconstructions.png,spectral_*.png}" \
     "and the model folders $WORK_DIR/models/{tokenizer,generator}"
