#!/usr/bin/env bash
# Create (or reuse) a virtual environment with mmspectral and the pinned dependency set.
# Sourced by tools/quickstart.sh and tools/run_tests.sh; safe to run again (it reinstalls only when
# requirements/pinned.txt or setup.cfg changed). Needs Python >= 3.10 and pip, nothing else.
#   MMSPECTRAL_VENV  where the environment lives (default: <repo>/.venv)
#   PYTHON           the interpreter that creates it (default: python3)
#   MMSPECTRAL_USE_PYTHON  skip all of this and use that interpreter (an environment of your own that has
#                    mmspectral installed; the tests run the quick start this way)
set -euo pipefail
if [ -n "${MMSPECTRAL_USE_PYTHON:-}" ]; then
    export MMSPECTRAL_PYTHON="$MMSPECTRAL_USE_PYTHON"
    return 0 2>/dev/null || exit 0
fi
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMSPECTRAL_VENV:-$REPO_ROOT/.venv}
BASE_PYTHON=${PYTHON:-python3}

if ! "$BASE_PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
    echo "mmspectral needs Python >= 3.10; '$BASE_PYTHON' is $("$BASE_PYTHON" --version 2>&1 || echo missing)." >&2
    echo "Set PYTHON=/path/to/python3.10+ and run again." >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$BASE_PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
STAMP="$VENV/.mmspectral-installed"
WANT=$(cat "$REPO_ROOT/requirements/pinned.txt" "$REPO_ROOT/setup.cfg" | "$PY" -c \
    'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    echo "[setup] installing the pinned dependency set into $VENV (first time: a few minutes, ~6 GB)"
    LOG="$VENV/.mmspectral-install.log"
    if ! { "$PY" -m pip install --disable-pip-version-check --upgrade pip \
           && "$PY" -m pip install --disable-pip-version-check -r "$REPO_ROOT/requirements/pinned.txt" \
           && "$PY" -m pip install --disable-pip-version-check --no-deps -e "$REPO_ROOT"; } > "$LOG" 2>&1; then
        tail -n 40 "$LOG" >&2
        echo "[setup] pip failed; the full log is $LOG" >&2
        exit 1
    fi
    echo "$WANT" > "$STAMP"
fi
export MMSPECTRAL_PYTHON="$PY"
