#!/usr/bin/env bash
# Quick start (2): set up the environment if needed, then run the test suite (CPU only, offline).
# Extra arguments go to pytest, e.g. bash tools/run_tests.sh -k dct
# It installs no system packages unless asked: MMSPECTRAL_INSTALL_BROWSER=1 lets it apt-get install the
# browser test's chromium (tools/setup_demo.sh); without it, that one test skips where chromium is missing.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REPO_ROOT/tools/setup_env.sh"
source "$REPO_ROOT/tools/setup_demo.sh"  # the web demo's extras for its browser test (pip; apt-get if asked)
cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE
exec "$MMSPECTRAL_PYTHON" -m pytest tests -q "$@"
