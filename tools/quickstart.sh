#!/usr/bin/env bash
# Quick start (1): set up the environment if needed, then run the main job on the embedded dataset.
# Outputs go to work_dirs/quickstart/ (override with WORK_DIR=...).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO_ROOT/tools/setup_env.sh"
cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE
WORK_DIR=${WORK_DIR:-work_dirs/quickstart}
PY="$MMSPECTRAL_PYTHON"

echo "[quickstart] spectral decomposition of a photo (paper setting: 64 tokens, 256 px, eq. 9 schedule)"
"$PY" tools/analysis/visualize_spectral.py --out "$WORK_DIR/spectral_photo_256px_64tok.png"
echo "[quickstart] spectral decomposition of EmbeddedShapes images (64 px, 16 tokens)"
for cls in 0 6 8; do
    "$PY" tools/analysis/visualize_spectral.py --embedded-class "$cls" --image-size 64 --num-tokens 16 \
        --prefixes 1 2 4 6 8 10 12 16 --out "$WORK_DIR/spectral_embedded_class$cls.png"
done
echo "[quickstart] done: figures in $WORK_DIR"
