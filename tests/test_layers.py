"""The package's layers (docs/design.md): checked by import-linter, and what importing a low layer loads."""
import os
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT_IMPORTS = shutil.which('lint-imports') or os.path.join(os.path.dirname(sys.executable), 'lint-imports')


def lint_imports(root: str) -> subprocess.CompletedProcess:
    if not os.path.isfile(LINT_IMPORTS):
        pytest.skip('import-linter is not installed (it is in requirements/pinned.txt)')
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run([LINT_IMPORTS, '--config', os.path.join(root, 'setup.cfg'), '--no-cache'], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_hold():
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert '2 kept, 0 broken' in result.stdout


def test_the_contracts_catch_an_upward_import_and_a_cycle(tmp_path):
    """A copy of the package with the spectral core importing the models (upward), and the preflight and the
    runner importing each other (a cycle inside the engine), breaks both contracts."""
    shutil.copytree(os.path.join(REPO_ROOT, 'mmspectral'), tmp_path / 'mmspectral',
                    ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(os.path.join(REPO_ROOT, 'setup.cfg'), tmp_path / 'setup.cfg')
    with open(tmp_path / 'mmspectral' / 'spectral' / 'dct.py', 'a') as f:
        f.write('\nimport mmspectral.models  # noqa\n')
    with open(tmp_path / 'mmspectral' / 'engine' / 'preflight.py', 'a') as f:
        f.write('\nfrom . import runner  # noqa\n')
    with open(tmp_path / 'mmspectral' / 'engine' / 'runner.py', 'a') as f:
        f.write('\nfrom . import preflight  # noqa\n')
    result = lint_imports(str(tmp_path))
    assert result.returncode != 0
    assert 'mmspectral.spectral.dct -> mmspectral.models' in result.stdout
    assert '.runner -> .preflight' in result.stdout or '.preflight -> .runner' in result.stdout


def test_importing_models_and_evaluation_loads_neither_the_engine_nor_matplotlib():
    code = ('import sys, mmspectral.models, mmspectral.evaluation, mmspectral.spectral, mmspectral.datasets; '
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('mmspectral.')}), "
            "'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    subpackages, matplotlib = out.stdout.strip().rsplit(' ', 1)
    assert 'engine' not in subpackages and 'apis' not in subpackages, subpackages
    assert matplotlib == 'False'
