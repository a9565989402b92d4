"""The collective timeout setting (checked before anything starts) and the heartbeat report that names the
ranks a timed-out collective waited for. The real two-process case (a rank stopped with SIGSTOP) is
``test_a_stopped_rank_is_named_when_the_collective_times_out`` in test_distributed.py."""
import datetime
import re
import subprocess
import sys
import time

import pytest
import torch.distributed as torch_dist
from mmengine.config import Config

from mmspectral.engine import (DEFAULT_DIST_TIMEOUT, DIST_TIMEOUT_ENV, ConfigCheckError, check_config,
                               check_dist_timeout, dist_timeout)
from mmspectral.engine.heartbeat import Heartbeat, is_collective_failure


@pytest.mark.parametrize('value', [0, -5, '0', 'ten', '', float('nan'), float('inf'), True, None,
                                   [600], datetime.timedelta(0)])
def test_bad_timeouts_are_refused_with_the_source_and_what_is_expected(value):
    with pytest.raises(ValueError) as info:
        check_dist_timeout(value, '--dist-timeout')
    assert str(info.value).startswith(f'--dist-timeout={value!r}: expected the collective timeout as a '
                                      'positive number of seconds')


def test_good_timeouts_are_seconds():
    assert check_dist_timeout(600) == 600.0
    assert check_dist_timeout('90.5') == 90.5
    assert check_dist_timeout(datetime.timedelta(minutes=2)) == 120.0


def test_the_config_wins_over_the_environment_which_changes_the_default(monkeypatch):
    monkeypatch.delenv(DIST_TIMEOUT_ENV, raising=False)
    assert dist_timeout() == DEFAULT_DIST_TIMEOUT == 600
    monkeypatch.setenv(DIST_TIMEOUT_ENV, '1800')
    assert dist_timeout() == 1800
    assert dist_timeout(30) == 30
    monkeypatch.setenv(DIST_TIMEOUT_ENV, '-1')
    with pytest.raises(ValueError, match=f"^{DIST_TIMEOUT_ENV}='-1': expected"):
        dist_timeout()
    assert dist_timeout(30) == 30  # not read when the config sets the timeout


def test_preflight_reports_a_bad_config_timeout(monkeypatch):
    monkeypatch.delenv(DIST_TIMEOUT_ENV, raising=False)
    check_config(Config(dict(env_cfg=dict(dist_cfg=dict(timeout=60)))), mode='model')
    with pytest.raises(ConfigCheckError, match=r"env_cfg.dist_cfg.timeout='1h': expected the collective"):
        check_config(Config(dict(env_cfg=dict(dist_cfg=dict(timeout='1h')))), mode='model')


@pytest.mark.slow
def test_train_refuses_a_bad_timeout_before_writing_anything(tmp_path, repo_root, subprocess_env):
    config = tmp_path / 'cfg.py'
    config.write_text(f"_base_ = ['{repo_root}/configs/_base_/default_runtime.py']\n")
    work_dir = tmp_path / 'work'
    out = subprocess.run([sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir),
                          '--dist-timeout', '-3'], cwd=repo_root, env=subprocess_env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip() == ("--dist-timeout='-3': expected the collective timeout as a positive number "
                                  'of seconds, e.g. 600 (10 minutes, the default) or 1800. Fix or remove it '
                                  '(docs/distributed.md).')
    assert not work_dir.exists()


def test_collective_failures_are_told_from_other_errors():
    gloo = RuntimeError('[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 8000ms for recv')
    assert is_collective_failure(gloo)
    assert is_collective_failure(torch_dist.DistBackendError('NCCL error'))
    try:
        try:
            raise gloo
        except RuntimeError as exc:
            raise ValueError('while saving') from exc
    except ValueError as wrapped:
        assert is_collective_failure(wrapped)
    assert not is_collective_failure(ValueError('bad shape'))
    assert not is_collective_failure(RuntimeError('mat1 and mat2 shapes cannot be multiplied'))


def test_the_report_tells_silent_slow_failed_and_waiting_ranks_apart():
    """Five ranks on one store: 0 reports; 1 waits where 0 does; 2 is slow elsewhere; 3 failed; 4 stopped
    beating (frozen); 5 never beat."""
    store = torch_dist.HashStore()
    beats = [Heartbeat(store, r, 6, timeout=8, interval=0.2, min_gap=0.05).start() for r in range(5)]
    try:
        for hb in beats:
            hb.set_phase('iteration 7')
        beats[2].set_phase('validation after iteration 6')
        beats[3].set_failed(ValueError('bad batch'))
        time.sleep(0.3)
        beats[4].stop()
        time.sleep(0.3)
        report = beats[0].report(RuntimeError('Timed out waiting 8000ms for recv operation to complete'))
    finally:
        for hb in beats:
            hb.stop()
    lines = report.splitlines()
    pid, host = beats[0].pid, beats[0].host
    assert lines[0].startswith(f'Rank 0 (pid {pid} on host {host}) stopped in a collective operation')
    assert 'at iteration 7' in lines[0] and 'the collective timeout is 8 s' in lines[0]
    assert lines[0].endswith('The backend said: Timed out waiting 8000ms for recv operation to complete')
    assert re.match(rf'rank 4 \(pid {pid} on host {re.escape(host)}\) is silent: no heartbeat for \d s, '
                    r'last at iteration 7\. The process is frozen, stopped \(SIGSTOP\)', lines[1])
    assert lines[2].startswith('rank 5 never sent a heartbeat')
    assert lines[3] == (f'rank 3 (pid {pid} on host {host}) stopped with ValueError: bad batch at '
                        'iteration 7: see its log.')
    assert re.match(rf'rank 2 \(pid {pid} on host {re.escape(host)}\) is alive but has been at validation '
                    r'after iteration 6 for \d s: it is slow', lines[4])
    assert lines[5] == 'rank 1 is alive and at iteration 7, as this rank.'
