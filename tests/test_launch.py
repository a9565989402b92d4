"""The tools' start-up (mmspectral/launch.py): the OpenMP policy and the headless backend are set before torch
loads, and ``run`` keeps freed memory before the tool's main runs; importing it loads no torch."""
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_prepare_and_run_in_a_fresh_process():
    code = '''
import os, sys
for key in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'MPLBACKEND'):
    os.environ.pop(key, None)
from mmspectral.launch import prepare, run
assert 'torch' not in sys.modules
assert prepare(data_workers=0) is None and 'OMP_WAIT_POLICY' not in os.environ
os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'
assert prepare(passive=True) == 'ACTIVE'  # the user's choice wins
del os.environ['OMP_WAIT_POLICY']
assert prepare(passive=True) == 'PASSIVE'
del os.environ['OMP_WAIT_POLICY']
assert prepare(data_workers=2, plots=True) == 'PASSIVE'
import matplotlib
assert matplotlib.get_backend().lower() == 'agg'
from mmspectral.allocator import freed_memory_kept
assert run(lambda: 42) == 42 and freed_memory_kept()
print('ok')
'''
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr[-2000:]
