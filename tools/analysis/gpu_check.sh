#!/usr/bin/env bash
# The GPU check (docs/gpu.md): on a CUDA machine, the gpu-marked tests, then the throughput table of
# tools/analysis/gpu_bench.py, in one command and a few minutes.
#
#   bash tools/analysis/gpu_check.sh --prepare   # here, with a package registry: wheels into .gpu_wheels/
#   bash tools/analysis/gpu_check.sh             # there: install the wheels, print versions, test, measure
#   bash tools/analysis/gpu_check.sh --dry-run   # any machine: the same steps, CUDA lines marked skipped
#
# The GPU machine may have torch and the scientific stack but not mmengine / mmcv-lite and no registry, so
# --prepare downloads the pure-Python wheels those need (nothing else; tomli, which yapf needs below Python 3.11,
# is left out: the GPU machine has 3.12) and the run installs them with --no-deps
# into a virtual environment that sees the system's packages (.gpu_venv/), then mmspectral itself. A machine
# that already has everything (e.g. the project's own .venv) is used as it is: set GPU_CHECK_PYTHON=path/to/python.
# Logs and the table go to $OUT when it is set (else work_dirs/gpu_check/): gpu_check.log, gpu_tests.log,
# gpu_tests_report.json, gpu_table.md, pipeline/pipeline.md (tools/analysis/benchmark_pipeline.py on CUDA).
set -uo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO_ROOT"
WHEELS="$REPO_ROOT/.gpu_wheels"
# The pinned versions of requirements/pinned.txt and the pure-Python packages they need beyond torch's stack.
PACKAGES=(mmengine==0.10.7 mmcv-lite==2.2.0 addict yapf termcolor platformdirs packaging setuptools wheel)
MODE=${1:-run}

if [ "$MODE" = "--prepare" ]; then
    mkdir -p "$WHEELS"
    python3 -m pip download --disable-pip-version-check --no-deps --only-binary=:all: -d "$WHEELS" \
        "${PACKAGES[@]}" || { echo "[gpu_check] pip download failed" >&2; exit 1; }
    echo "[gpu_check] wheels in $WHEELS:"
    ls -1 "$WHEELS"
    du -sh "$WHEELS"
    exit 0
elif [ "$MODE" != "run" ] && [ "$MODE" != "--dry-run" ]; then
    echo "usage: bash tools/analysis/gpu_check.sh [--prepare | --dry-run]" >&2
    exit 2
fi

OUT_DIR=${OUT:-$REPO_ROOT/work_dirs/gpu_check}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
REPORT="$OUT_DIR/gpu_tests_report.json"
rm -f "$REPORT"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
echo "[gpu_check] $(date -u +%FT%TZ) in $REPO_ROOT ($(git rev-parse --short HEAD 2>/dev/null || echo 'no git'))"

PY=${GPU_CHECK_PYTHON:-}
if [ -z "$PY" ]; then
    if python3 -c 'import mmengine, mmcv, mmspectral' 2>/dev/null; then
        PY=python3
    else
        [ -d "$WHEELS" ] || { echo "[gpu_check] no mmengine here and no $WHEELS: run --prepare first" >&2; exit 1; }
        VENV="$REPO_ROOT/.gpu_venv"
        [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
        PY="$VENV/bin/python"
        "$PY" -m pip install --disable-pip-version-check --no-index --no-deps -q "$WHEELS"/*.whl \
            || { echo "[gpu_check] installing the wheels failed" >&2; exit 1; }
        if ! "$PY" -m pip install --disable-pip-version-check --no-index --no-deps --no-build-isolation -q -e . ; then
            echo "[gpu_check] pip install -e . failed; using the source tree through PYTHONPATH instead"
        fi
    fi
fi
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
"$PY" - <<'PY'
import importlib, platform, sys
print(f'[gpu_check] python {platform.python_version()} at {sys.executable}')
for name in ('torch', 'torchvision', 'timm', 'mmengine', 'mmcv', 'einops', 'numpy', 'scipy', 'cv2', 'pytest',
             'mmspectral'):
    try:
        module = importlib.import_module(name)
        print(f'[gpu_check]   {name} {getattr(module, "__version__", "?")}')
    except Exception as exc:  # noqa: BLE001
        print(f'[gpu_check]   {name} MISSING ({type(exc).__name__}: {exc})')
import torch
print(f'[gpu_check] CUDA available: {torch.cuda.is_available()}, CUDA {torch.version.cuda}, '
      f'devices: {[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}')
PY

DRY=()
if [ "$MODE" = "--dry-run" ]; then
    DRY=(--dry-run)
    echo "[gpu_check] dry run: the gpu tests are collected (they skip without CUDA), the table is printed skipped"
fi
echo "[gpu_check] gpu tests"
MMSPECTRAL_GPU_REPORT="$REPORT" timeout 300 "$PY" -m pytest tests -m gpu -q -rs -p no:cacheprovider \
    > "$OUT_DIR/gpu_tests.log" 2>&1
TESTS_STATUS=$?
tail -n 40 "$OUT_DIR/gpu_tests.log"
echo "[gpu_check] gpu tests exit status $TESTS_STATUS after $(( $(date +%s) - START )) s"
echo "[gpu_check] throughput"
timeout 150 "$PY" tools/analysis/gpu_bench.py --report "$REPORT" --out "$OUT_DIR/gpu_table.md" "${DRY[@]}"
BENCH_STATUS=$?
if [ "$MODE" = "run" ]; then
    echo "[gpu_check] end to end: labels -> tokens -> 256 px pixels (SpectralAR-d16 + two-stage B-64), batch 64"
    timeout 120 "$PY" tools/analysis/benchmark_pipeline.py --device cuda --batch-size 64 --repeats 2 \
        --out "$OUT_DIR/pipeline" 2>&1 | tail -n 8
fi
echo "[gpu_check] done in $(( $(date +%s) - START )) s (tests: $TESTS_STATUS, table: $BENCH_STATUS); files in $OUT_DIR"
[ "$TESTS_STATUS" -eq 0 ] || [ "$TESTS_STATUS" -eq 5 ] || exit "$TESTS_STATUS"
exit "$BENCH_STATUS"
