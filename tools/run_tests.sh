#!/usr/bin/env bash
# Quick start (2): set up the environment if needed, then run the test suite (CPU only, offline).
# Extra arguments go to pytest, e.g. bash tools/run_tests.sh -k dct
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO_ROOT/tools/setup_env.sh"
source "$REPO_ROOT/tools/setup_demo.sh"  # the web demo's extras for its browser test
cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE
exec "$MMSPECTRAL_PYTHON" -m pytest tests -q "$@"
