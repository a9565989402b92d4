#!/usr/bin/env bash
# The web demo's extras for the test suite (sourced by tools/run_tests.sh after tools/setup_env.sh).
# - Gradio and Selenium (requirements/demo.txt) are pip-installed when missing into the environment the
#   tests run in ($MMSPECTRAL_PYTHON, .venv/ by default): Python packages, not system packages.
# - Chromium and chromedriver (system packages) are installed only when asked: MMSPECTRAL_INSTALL_BROWSER=1
#   (what CI sets) makes it apt-get install Debian's chromium and chromium-driver when they are missing (as
#   root). Without it, a missing browser is reported in one line and the browser test skips.
# MMSPECTRAL_REQUIRE_BROWSER=1 is exported when everything is there, so that the browser test then fails
# instead of skipping; a browser that could not be installed (no network, not root) makes it skip, saying why.
#   MMSPECTRAL_CHROMIUM, MMSPECTRAL_CHROMEDRIVER  where they are (default /usr/bin/chromium and
#                    /usr/bin/chromedriver; the browser test reads the same variables)
#   MMSPECTRAL_SKIP_DEMO_SETUP=1  skips all of this
if [ "${MMSPECTRAL_SKIP_DEMO_SETUP:-0}" = 1 ]; then
    return 0 2>/dev/null || exit 0
fi
_demo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_demo_log=${TMPDIR:-/tmp}
_demo_chromium=${MMSPECTRAL_CHROMIUM:-/usr/bin/chromium}
_demo_driver=${MMSPECTRAL_CHROMEDRIVER:-/usr/bin/chromedriver}
_demo_ok=1
if ! "$MMSPECTRAL_PYTHON" -c 'import gradio, selenium' 2>/dev/null; then
    echo "[setup] installing the demo's Python extras into the test environment (requirements/demo.txt)"
    if ! "$MMSPECTRAL_PYTHON" -m pip install --disable-pip-version-check -q -r "$_demo_root/requirements/demo.txt" \
            > "$_demo_log/mmspectral-demo-install.log" 2>&1; then
        echo "[setup] could not install requirements/demo.txt (log: $_demo_log/mmspectral-demo-install.log);" \
             "the browser test will skip" >&2
        _demo_ok=0
    fi
fi
_demo_have_browser() { [ -x "$_demo_chromium" ] && [ -x "$_demo_driver" ]; }
if ! _demo_have_browser; then
    if [ "${MMSPECTRAL_INSTALL_BROWSER:-0}" != 1 ]; then
        echo "[setup] no $_demo_chromium and $_demo_driver, so the browser test will skip; to run it:" \
             "MMSPECTRAL_INSTALL_BROWSER=1 bash tools/run_tests.sh (as root, installs them with apt-get)" \
             "or apt-get install chromium chromium-driver" >&2
        _demo_ok=0
    elif [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        echo "[setup] installing Debian's chromium and chromium-driver for the browser test" \
             "(MMSPECTRAL_INSTALL_BROWSER=1)"
        if ! { apt-get update -qq \
               && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
                > "$_demo_log/mmspectral-chromium-install.log" 2>&1; then
            echo "[setup] could not install chromium (log: $_demo_log/mmspectral-chromium-install.log);" \
                 "the browser test will skip" >&2
            _demo_ok=0
        elif ! _demo_have_browser; then
            echo "[setup] chromium was installed, but there is still no $_demo_chromium and $_demo_driver" \
                 "(MMSPECTRAL_CHROMIUM / MMSPECTRAL_CHROMEDRIVER say where they are); the browser test will" \
                 "skip" >&2
            _demo_ok=0
        fi
    else
        echo "[setup] MMSPECTRAL_INSTALL_BROWSER=1, but there is no $_demo_chromium and $_demo_driver and no" \
             "root apt-get to install them (apt-get install chromium chromium-driver); the browser test will" \
             "skip" >&2
        _demo_ok=0
    fi
fi
if [ "$_demo_ok" = 1 ]; then
    export MMSPECTRAL_REQUIRE_BROWSER=1
fi
unset -f _demo_have_browser
unset _demo_root _demo_log _demo_chromium _demo_driver _demo_ok
