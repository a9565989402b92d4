"""Freed memory kept in the process (mmspectral/allocator.py): reused large blocks cost no page faults."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = '''
import json, resource, sys
import torch
from mmspectral.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == 'keep' else False
x = torch.ones(16 * 2 ** 20)  # a 64 MiB input; each iteration makes and frees three 64 MiB results
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = x * 2
    z = y + 1
    w = z.relu()
    del y, z, w
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(dict(applied=applied, faults=faults)))
'''


def probe(mode, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_')}
    environ.update(env, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, '-c', PROBE, mode], capture_output=True, text=True, env=environ,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc settings')
def test_kept_memory_is_reused_without_page_faults_and_the_default_faults_every_time():
    pages = 64 * 2 ** 20 // os.sysconf('SC_PAGE_SIZE')  # of one result
    default = probe('default')
    assert all(f > 2 * pages for f in default['faults'])  # unmapped on free, faulted in again every time
    kept = probe('keep')
    if not kept['applied']:
        pytest.skip('the C library is not glibc')
    assert kept['faults'][0] > 2 * pages  # the heap grows at first
    # then freed blocks are reused. The kernel may still reclaim idle pages of a process (DAMON-based
    # reclaim runs on some machines, this one included), which faults a few blocks in again; so one of three
    # fresh processes must show the reuse, while the default faults every time in every one.
    runs = [kept] + [probe('keep') for _ in range(2)]
    assert any(all(f < pages // 20 for f in run['faults'][-3:]) for run in runs), [r['faults'] for r in runs]


def test_the_user_opts_out_or_keeps_their_own_malloc_settings():
    assert probe('keep', MMSPECTRAL_KEEP_FREED_MEMORY='0')['applied'] is False
    assert probe('keep', MALLOC_ARENA_MAX='2')['applied'] is False
