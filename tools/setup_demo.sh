#!/usr/bin/env bash
# The web demo's extras for the test suite (sourced by tools/run_tests.sh after tools/setup_env.sh): Gradio and
# Selenium into the environment (requirements/demo.txt) and Debian's chromium + chromium-driver, each only when
# missing. Sets MMSPECTRAL_REQUIRE_BROWSER=1 when all are there, so that the browser test fails instead of
# skipping; if something cannot be installed (no network, not root), it says so and the browser test skips.
# MMSPECTRAL_SKIP_DEMO_SETUP=1 skips all of this.
if [ "${MMSPECTRAL_SKIP_DEMO_SETUP:-0}" = 1 ]; then
    return 0 2>/dev/null || exit 0
fi
_demo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_demo_ok=1
if ! "$MMSPECTRAL_PYTHON" -c 'import gradio, selenium' 2>/dev/null; then
    echo "[setup] installing the demo's extras (requirements/demo.txt)"
    if ! "$MMSPECTRAL_PYTHON" -m pip install --disable-pip-version-check -q -r "$_demo_root/requirements/demo.txt" \
            > "${TMPDIR:-/tmp}/mmspectral-demo-install.log" 2>&1; then
        echo "[setup] could not install requirements/demo.txt (log: ${TMPDIR:-/tmp}/mmspectral-demo-install.log);" \
             "the browser test will skip" >&2
        _demo_ok=0
    fi
fi
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        echo "[setup] installing Debian's chromium and chromium-driver for the browser test"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
                > "${TMPDIR:-/tmp}/mmspectral-chromium-install.log" 2>&1; then
            echo "[setup] could not install chromium (log: ${TMPDIR:-/tmp}/mmspectral-chromium-install.log);" \
                 "the browser test will skip" >&2
            _demo_ok=0
        fi
    else
        echo "[setup] no /usr/bin/chromium and /usr/bin/chromedriver, and no root apt-get to install them" \
             "(apt-get install chromium chromium-driver); the browser test will skip" >&2
        _demo_ok=0
    fi
fi
if [ "$_demo_ok" = 1 ]; then
    export MMSPECTRAL_REQUIRE_BROWSER=1
fi
unset _demo_root _demo_ok
