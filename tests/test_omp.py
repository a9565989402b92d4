"""The OpenMP wait policy the tools choose before torch loads (mmspectral/omp.py)."""
import os
import subprocess
import sys

import pytest

from mmspectral.omp import config_data_workers, set_omp_wait_policy


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    monkeypatch.delenv('GOMP_SPINCOUNT', raising=False)
    return monkeypatch


def test_passive_only_when_data_loader_workers_share_the_cores(clean_env):
    assert set_omp_wait_policy(0) is None  # main process only: libgomp's default (brief spinning)
    assert set_omp_wait_policy(2) == 'PASSIVE'


@pytest.mark.parametrize('key, value', [('OMP_WAIT_POLICY', 'ACTIVE'), ('GOMP_SPINCOUNT', '1000')])
def test_a_policy_the_user_set_wins(clean_env, key, value):
    clean_env.setenv(key, value)
    set_omp_wait_policy(4)
    assert os.environ.get('OMP_WAIT_POLICY') == ('ACTIVE' if key == 'OMP_WAIT_POLICY' else None)


def test_workers_are_read_from_the_config_and_its_overrides(tmp_path):
    (tmp_path / 'base.py').write_text('train_dataloader = dict(batch_size=4, num_workers=3)\n'
                                      'test_dataloader = dict(batch_size=4, num_workers=0)\n')
    (tmp_path / 'cfg.py').write_text("_base_ = ['base.py']\n"
                                     "custom_imports = dict(imports=['not_importable_here'])\n")
    config = str(tmp_path / 'cfg.py')
    # through _base_, no custom import run
    assert config_data_workers(config, None, ['train_dataloader']) == 3
    assert config_data_workers(config, None, ['test_dataloader']) == 0
    assert config_data_workers(config, {'train_dataloader.num_workers': 0}, ['train_dataloader']) == 0
    # the safe choice
    assert config_data_workers(str(tmp_path / 'missing.py'), None, ['train_dataloader']) == 1


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py', 'tools/extract_tokens.py', 'demo/app.py',
                                  'tools/analysis/benchmark_tokenizers.py'])
def test_tools_load_torch_only_after_choosing(tool, repo_root, subprocess_env):
    """The policy only takes effect if it is set before torch (and its OpenMP runtime) loads."""
    code = ('import importlib.util, sys\n'
            f'spec = importlib.util.spec_from_file_location("tool", "{repo_root}/{tool}")\n'
            'spec.loader.exec_module(importlib.util.module_from_spec(spec))\n'
            'print("torch" in sys.modules)\n')
    out = subprocess.run([sys.executable, '-c', code], env=subprocess_env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'False'
