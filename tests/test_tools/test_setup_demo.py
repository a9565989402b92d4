"""tools/setup_demo.sh (sourced by the README's test command) installs system packages only when asked: with a
missing chromium it calls apt-get under MMSPECTRAL_INSTALL_BROWSER=1 and otherwise only says how to opt in.

apt-get, id and the Python interpreter are fakes on PATH, and the browser's paths point into tmp_path, so the
test neither installs anything nor depends on whether this machine has chromium."""
import os
import subprocess

import pytest

FAKE_APT = '#!/bin/sh\necho "$@" >> "{marker}"\nexit 0\n'


def fake_bin(tmp_path):
    """Fakes: apt-get that logs its arguments, id that says root, a python that has the demo's extras."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    scripts = {'apt-get': FAKE_APT.format(marker=tmp_path / 'apt-get.log'),
               'id': '#!/bin/sh\necho 0\n',
               'python': '#!/bin/sh\nexit 0\n'}  # `python -c 'import gradio, selenium'` succeeds
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def setup_demo(tmp_path, repo_root, browser_present=False, **extra):
    """Source tools/setup_demo.sh; returns (the process, apt-get's calls, MMSPECTRAL_REQUIRE_BROWSER)."""
    bin_dir = fake_bin(tmp_path)
    chromium, driver = tmp_path / 'chromium', tmp_path / 'chromedriver'
    if browser_present:
        for path in (chromium, driver):
            path.write_text('#!/bin/sh\n')
            path.chmod(0o755)
    unset = ('MMSPECTRAL_INSTALL_BROWSER', 'MMSPECTRAL_REQUIRE_BROWSER', 'MMSPECTRAL_SKIP_DEMO_SETUP')
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(PATH=f'{bin_dir}{os.pathsep}{env.get("PATH", "")}', MMSPECTRAL_PYTHON=str(bin_dir / 'python'),
               MMSPECTRAL_CHROMIUM=str(chromium), MMSPECTRAL_CHROMEDRIVER=str(driver), TMPDIR=str(tmp_path),
               **extra)
    proc = subprocess.run(['bash', '-c', 'set -euo pipefail; source tools/setup_demo.sh; '
                           'echo "require=${MMSPECTRAL_REQUIRE_BROWSER:-}"'],
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = tmp_path / 'apt-get.log'
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls, proc.stdout.strip().splitlines()[-1].split('=', 1)[1]


def test_without_the_opt_in_no_system_package_is_installed(tmp_path, repo_root):
    proc, calls, require = setup_demo(tmp_path, repo_root)
    assert calls == []
    lines = [line for line in proc.stderr.splitlines() if 'browser test will skip' in line]
    assert len(lines) == 1 and 'MMSPECTRAL_INSTALL_BROWSER=1 bash tools/run_tests.sh' in lines[0], proc.stderr
    assert require == ''  # so the browser test skips rather than fails


@pytest.mark.parametrize('present', [False, True], ids=['missing', 'present'])
def test_the_opt_in_installs_chromium_only_when_missing(tmp_path, repo_root, present):
    proc, calls, require = setup_demo(tmp_path, repo_root, browser_present=present,
                                      MMSPECTRAL_INSTALL_BROWSER='1')
    if present:
        assert calls == [], calls
        assert require == '1'  # everything there: the browser test runs (or fails); it does not skip
        assert 'browser test will skip' not in proc.stderr
    else:
        assert any('install' in call and 'chromium chromium-driver' in call for call in calls), calls
        # the fake apt-get put nothing at MMSPECTRAL_CHROMIUM: the set-up says so, and the test will skip
        assert 'still no' in proc.stderr and 'browser test will skip' in proc.stderr, proc.stderr
        assert require == ''
