"""One run per work dir: the lock, the refusal to overwrite another run's checkpoints, and run ids on resume
(docs/reliability.md, "One run per work dir"). Real MMEngine runs of the tiny autoencoder, 4-6 iterations."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from mmspectral.apis import build_runner, load_config
from mmspectral.engine import find_latest_checkpoint, load_torch_file
from mmspectral.engine.workdir import (LOCK_INFO_FILE, RUN_FILE, WorkDirBusyError, WorkDirInUseError,
                                       WorkDirLock, read_run_id)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, 'tests', 'data', 'tiny_autoencoder_config.py')


def make_runner(work_dir, name, max_iters=4, **overrides):
    cfg = load_config(CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'workdir-{name}-{os.path.basename(os.path.dirname(str(work_dir)))}'
    cfg.train_cfg.max_iters = max_iters
    cfg.merge_from_dict(overrides)
    return build_runner(cfg)


def run_id_of(path):
    return load_torch_file(str(path))['meta']['run_id']


def test_second_writer_is_refused_with_the_holders_pid(tmp_path):
    held = WorkDirLock(str(tmp_path)).acquire()  # another run training here
    try:
        runner = make_runner(tmp_path, 'second')
        with pytest.raises(WorkDirBusyError) as err:
            runner.train()
        message = str(err.value)
        info = json.loads((tmp_path / LOCK_INFO_FILE).read_text())
        assert f'pid {os.getpid()}' in message and info['started'] in message and '--work-dir' in message
        assert not list(tmp_path.glob('*.pth'))  # nothing trained, nothing written
    finally:
        held.release()
    make_runner(tmp_path, 'after').train()  # the lock is free again once its holder let go
    assert (tmp_path / 'iter_4.pth').is_file()
    assert not (tmp_path / LOCK_INFO_FILE).exists()


def test_lock_of_a_dead_run_is_taken_over(tmp_path):
    # A run killed with SIGKILL leaves its lock record; the OS has released the lock itself.
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    record = json.dumps(dict(pid=dead.pid, started='2026-01-01T00:00:00+00:00'))
    (tmp_path / 'run.lock').touch()
    (tmp_path / LOCK_INFO_FILE).write_text(record)
    runner = make_runner(tmp_path, 'stale')
    lock = WorkDirLock(str(tmp_path)).acquire()
    assert f'pid {dead.pid}' in lock.stale_message() and 'has ended' in lock.stale_message()
    lock.release()
    (tmp_path / LOCK_INFO_FILE).write_text(record)
    runner.train()
    assert (tmp_path / 'iter_4.pth').is_file()
    (log, ) = tmp_path.glob('*/*.log')
    assert f'earlier run (pid {dead.pid}' in log.read_text() and 'took it over' in log.read_text()


def test_a_killed_holder_releases_the_lock(tmp_path):
    code = ('import sys, time; from mmspectral.engine.workdir import WorkDirLock; '
            f'lock = WorkDirLock({str(tmp_path)!r}).acquire(); print("locked", flush=True); time.sleep(60)')
    holder = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(WorkDirBusyError, match=f'pid {holder.pid}'):
            WorkDirLock(str(tmp_path)).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs
        holder.wait()
    lock = WorkDirLock(str(tmp_path)).acquire()
    assert f'pid {holder.pid}' in lock.stale_message()
    lock.release()


def test_new_run_refuses_another_runs_checkpoints(tmp_path):
    make_runner(tmp_path, 'first').train()
    first = run_id_of(tmp_path / 'iter_4.pth')
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob('*.pth')}

    runner = make_runner(tmp_path, 'second')
    with pytest.raises(WorkDirInUseError) as err:
        runner.train()
    message = str(err.value)
    assert 'iter_2.pth' in message and '--resume auto' in message and '--work-dir' in message
    assert '--start-over' in message
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob('*.pth')} == before  # untouched

    make_runner(tmp_path, 'resumed', max_iters=6, resume=True).train()  # resuming it works
    assert run_id_of(tmp_path / 'iter_6.pth') == first

    make_runner(tmp_path, 'over', start_over=True).train()  # an explicit start-over
    second = run_id_of(tmp_path / 'iter_4.pth')
    assert second != first and read_run_id(str(tmp_path)) == second
    (aside, ) = tmp_path.glob('replaced_*')
    assert sorted(p.name for p in aside.glob('*.pth')) == ['iter_2.pth', 'iter_4.pth', 'iter_6.pth']
    assert run_id_of(aside / 'iter_6.pth') == first
    assert not (tmp_path / 'iter_6.pth').exists()


def test_auto_resume_refuses_when_no_checkpoint_is_this_runs(tmp_path):
    make_runner(tmp_path, 'first').train()
    (tmp_path / RUN_FILE).write_text(json.dumps(dict(run_id='another-run')))  # as after a copy over it
    with pytest.raises(WorkDirInUseError, match=r'nothing to resume.*--resume PATH'):
        make_runner(tmp_path, 'auto', max_iters=6, resume=True).train()
    assert not (tmp_path / 'iter_6.pth').exists()


def test_work_dir_without_checkpoints_needs_no_flag(tmp_path):
    (tmp_path / '20260101_000000').mkdir()  # the logs of a run that died before its first save
    (tmp_path / '20260101_000000' / '20260101_000000.log').write_text('...')
    make_runner(tmp_path, 'fresh').train()
    assert (tmp_path / 'iter_4.pth').is_file()


def test_moved_work_dir_resumes_its_own_run(tmp_path):
    exp, old = tmp_path / 'exp', tmp_path / 'exp_old'
    make_runner(exp, 'a', max_iters=4).train()
    run_a = read_run_id(str(exp))
    shutil.move(str(exp), str(old))
    make_runner(exp, 'b', max_iters=6).train()  # a new run where the old one was
    assert (old / 'last_checkpoint').read_text().strip() == str(exp / 'iter_4.pth')  # the new run's file

    assert find_latest_checkpoint(str(old)) == str(old / 'iter_4.pth')
    runner = make_runner(old, 'a-resumed', max_iters=6, resume=True)
    runner.train()
    assert runner.iter == 6 and run_id_of(old / 'iter_6.pth') == run_a
    assert load_torch_file(str(old / 'iter_6.pth'))['meta']['iter'] == 6

    # Without its own file of that name, a checkpoint of another run is skipped (run id), never resumed.
    os.remove(old / 'iter_6.pth')
    os.remove(old / 'iter_4.pth')
    (old / 'last_checkpoint').write_text(str(exp / 'iter_6.pth'))
    assert find_latest_checkpoint(str(old)) == str(old / 'iter_2.pth')
    assert find_latest_checkpoint(str(old), own_run_only=False) == str(exp / 'iter_6.pth')


def test_run_record_is_written(tmp_path):
    make_runner(tmp_path, 'record').train()
    record = json.loads((tmp_path / RUN_FILE).read_text())
    assert record['run_id'] == run_id_of(tmp_path / 'iter_2.pth') == run_id_of(tmp_path / 'iter_4.pth')


def test_train_tool_refuses_a_busy_work_dir_without_a_traceback(tmp_path, subprocess_env):
    env = dict(subprocess_env, PYTHONPATH=os.pathsep.join([os.path.join(REPO, 'tests', 'data'),
                                                           subprocess_env['PYTHONPATH']]))
    held = WorkDirLock(str(tmp_path)).acquire()
    try:
        proc = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    finally:
        held.release()
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert f'is in use by another run (pid {os.getpid()}' in proc.stderr
    assert not list(tmp_path.glob('*.pth'))
