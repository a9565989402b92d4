#!/usr/bin/env bash
# Quick start (1): set up the environment if needed, then run the main job on the embedded dataset:
#   1. the spectral decomposition figures (what each token prefix reconstructs under the eq. 9 schedule);
#   2. training the tiny nested spectral tokenizer (EmbeddedShapes, 64 px, 16 tokens; ~8 minutes on 2 cores),
#      which writes the coarse-to-fine reconstruction grid, the PSNR-vs-k plot and the metrics.
# Outputs go to work_dirs/quickstart/ (override with WORK_DIR=...). Extra arguments go to tools/train.py.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO_ROOT/tools/setup_env.sh"
cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE
WORK_DIR=${WORK_DIR:-work_dirs/quickstart}
PY="$MMSPECTRAL_PYTHON"
TOKENIZER_CONFIG=configs/spectralar/spectralar-tiny_16tok_1xb32-2k_shapes-64.py

echo "[quickstart] 1/2 spectral decomposition figures"
"$PY" tools/analysis/visualize_spectral.py --out "$WORK_DIR/spectral_photo_256px_64tok.png"
for cls in 0 6 8; do
    "$PY" tools/analysis/visualize_spectral.py --embedded-class "$cls" --image-size 64 --num-tokens 16 \
        --prefixes 1 2 4 6 8 10 12 16 --out "$WORK_DIR/spectral_embedded_class$cls.png"
done

echo "[quickstart] 2/2 training the tiny nested spectral tokenizer (log: $WORK_DIR/tokenizer/*/*.log)"
set +e
"$PY" tools/train.py "$TOKENIZER_CONFIG" --work-dir "$WORK_DIR/tokenizer" "$@" 2>&1 \
    | grep --line-buffered -E "Iter\(train\) \[ *[0-9]*[05]00/|Iter\(val\)|Error|Traceback" \
    | awk '{ print substr($0, 1, 240); fflush() }'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo "[quickstart] tokenizer training failed (exit $status); the full log is in $WORK_DIR/tokenizer/" >&2
    exit "$status"
fi
cp "$WORK_DIR/tokenizer/vis/val_reconstructions.png" "$WORK_DIR/tokenizer_reconstructions.png"
cp "$WORK_DIR/tokenizer/vis/val_psnr_vs_k.png" "$WORK_DIR/tokenizer_psnr_vs_k.png"
"$PY" - "$WORK_DIR" <<'PY'
import glob, json, os, sys
work = sys.argv[1]
scalars = sorted(glob.glob(os.path.join(work, 'tokenizer', '*', 'vis_data', 'scalars.json')))[-1]
val = [json.loads(line) for line in open(scalars) if '"recon/psnr"' in line][-1]
json.dump(val, open(os.path.join(work, 'tokenizer_metrics.json'), 'w'), indent=1)
print('[quickstart] tokenizer: PSNR {:.2f} dB with all tokens; per prefix vs low-pass target: {}'.format(
    val['recon/psnr'], ', '.join(f"k={k.rsplit('k', 1)[1]}: {v:.1f}" for k, v in val.items()
                                 if k.startswith('recon/psnr_lowpass/'))))
PY
echo "[quickstart] done: $WORK_DIR/{spectral_*.png,tokenizer_reconstructions.png,tokenizer_psnr_vs_k.png,tokenizer_metrics.json}"
