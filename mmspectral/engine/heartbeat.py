"""Which rank is silent when a collective operation times out.

When one rank of a distributed run freezes (``kill -STOP``, a hung file system, swapping, a dead node), the
others wait in their next all-reduce or barrier until the collective timeout and then fail with a backend
message such as gloo's "Timed out waiting 600000ms for recv operation to complete", which names no rank.

Every process therefore publishes a small heartbeat in the rendezvous store (the TCPStore that
``init_process_group`` already uses; no files): a daemon thread writes, every :data:`HEARTBEAT_INTERVAL`
seconds, and within :data:`MIN_GAP` seconds of a change of phase, this rank's pid, host and phase (e.g.
'iteration 7'). The training step itself only assigns a string and wakes the thread, so steps are not
slowed. The thread keeps beating while its main thread waits in a collective or computes, and stops only
when the whole process stops: a rank without new heartbeats is frozen, stopped or dead; a rank with new
heartbeats in an earlier phase is slow.

When a collective fails in ``runner.train()`` (:func:`collectives_watched`), the rank that caught the error
reads every rank's heartbeat twice, :data:`HEARTBEAT_INTERVAL` * 1.5 s apart, and raises
:class:`CollectiveTimeoutError` whose message names the silent and the slow ranks (docs/distributed.md).
"""
import json
import logging
import os
import re
import socket
import threading
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import torch.distributed as torch_dist
from mmengine.hooks import Hook
from mmengine.logging import print_log

__all__ = ['Heartbeat', 'HeartbeatHook', 'CollectiveTimeoutError', 'start_heartbeat', 'stop_heartbeat',
           'current_heartbeat', 'collectives_watched', 'is_collective_failure', 'HEARTBEAT_INTERVAL']

#: Seconds between two heartbeats of a process when its phase does not change.
HEARTBEAT_INTERVAL = 2.0
#: Least seconds between two heartbeats: a new phase is published within this, yet a process writes to the
#: store at most 1 / MIN_GAP times a second however short its steps.
MIN_GAP = 0.5
#: How long the report waits for the store before it gives up on reading the heartbeats.
_STORE_READ_LIMIT = 10.0
_PREFIX = 'mmspectral/heartbeat/'
_TIMEOUT_HELP = ('--dist-timeout, env_cfg.dist_cfg.timeout or MMSPECTRAL_DIST_TIMEOUT (docs/distributed.md)')
_COLLECTIVE_ERROR = re.compile(r'timed out|timeout|connection (reset|closed|refused)|closed by peer|'
                               r'broken pipe|gloo|nccl|c10d', re.IGNORECASE)


class CollectiveTimeoutError(RuntimeError):
    """A collective operation failed or timed out; the message names the ranks that did not reach it."""


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a failed or timed-out collective operation."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, torch_dist.DistError):
            return True
        if isinstance(exc, RuntimeError) and _COLLECTIVE_ERROR.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _ranks(ranks: List[int]) -> str:
    return ('rank ' if len(ranks) == 1 else 'ranks ') + ', '.join(str(r) for r in ranks)


class Heartbeat:
    """This process's heartbeat in the rendezvous store, written by a daemon thread.

    Args:
        store: the store every rank can reach (``_get_default_store()`` of the default process group).
        rank: this process's global rank.
        world_size: number of ranks.
        timeout: the collective timeout in seconds, for the report (None: not stated).
        interval: seconds between heartbeats while the phase stays the same.
        min_gap: least seconds between heartbeats (a new phase is published after this); at most ``interval``.
    """

    def __init__(self, store, rank: int, world_size: int, timeout: Optional[float] = None,
                 interval: float = HEARTBEAT_INTERVAL, min_gap: float = MIN_GAP) -> None:
        self.store = torch_dist.PrefixStore(_PREFIX, store)
        self.rank, self.world_size = rank, world_size
        self.timeout, self.interval, self.min_gap = timeout, interval, min(min_gap, interval)
        self.pid, self.host = os.getpid(), socket.gethostname()
        self.phase, self.phase_since = 'start-up (before training)', time.time()
        self.failure: Optional[str] = None
        self._seq = 0
        self._published_failure: Optional[str] = None
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name='mmspectral-heartbeat', daemon=True)

    def start(self) -> 'Heartbeat':
        self._thread.start()
        return self

    def stop(self, wait: float = 1.0) -> None:
        """Stop beating; a thread blocked on an unreachable store is left behind (it is a daemon)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(wait)

    def set_phase(self, phase: str) -> None:
        """Where this rank is now, e.g. 'iteration 7': an assignment and a wake-up of the heartbeat
        thread, which publishes it within ``min_gap`` seconds."""
        if phase != self.phase:
            self.phase, self.phase_since = phase, time.time()
            self._wake.set()

    def set_failed(self, exc: BaseException, wait: float = 2.0) -> None:
        """Publish at once that this rank stopped with ``exc``, so that the others do not call it silent."""
        self.failure = f'{type(exc).__name__}: {_last_line(exc)}'
        self._wake.set()
        deadline = time.monotonic() + wait
        while self._published_failure != self.failure and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._seq += 1
            value = dict(pid=self.pid, host=self.host, phase=self.phase, since=self.phase_since,
                         time=time.time(), seq=self._seq, failure=self.failure)
            try:
                self.store.set(f'rank{self.rank}', json.dumps(value))
            except Exception as exc:  # the store's host is gone (end of the run, or it died)
                if not self._stop.is_set():
                    print_log(f'Heartbeat of rank {self.rank} stopped: the rendezvous store is unreachable '
                              f'({exc}).', logger='current', level=logging.DEBUG)
                return
            self._published_failure = value['failure']
            published = time.monotonic()
            woken = self._wake.wait(self.interval)
            self._wake.clear()
            if woken and self.failure == self._published_failure:  # a new phase: soon, but not every step
                self._stop.wait(self.min_gap - (time.monotonic() - published))

    def read(self) -> Optional[Dict[int, dict]]:
        """Every rank's last heartbeat, or None when the store does not answer within a few seconds (its host
        process, rank 0 or torchrun's agent, is frozen or gone)."""
        beats: Dict[int, dict] = {}
        done = threading.Event()

        def read_all() -> None:
            try:
                for r in range(self.world_size):
                    key = f'rank{r}'
                    if self.store.check([key]):
                        beats[r] = json.loads(self.store.get(key))
            except Exception:  # the store's host is gone: reported as an unanswered store
                return
            done.set()

        threading.Thread(target=read_all, daemon=True).start()
        return beats if done.wait(_STORE_READ_LIMIT) else None

    def report(self, exc: BaseException) -> str:
        """Name the ranks that did not reach the collective that failed with ``exc`` (module docstring)."""
        waited = f'{self.timeout:g} s' if self.timeout else 'unknown here'
        there = time.time() - self.phase_since
        lines = [f'Rank {self.rank} (pid {self.pid} on host {self.host}) stopped in a collective operation '
                 f'(all-reduce, broadcast, barrier) at {self.phase}, after {there:.0f} s there; the '
                 f'collective timeout is {waited}. The backend said: {_last_line(exc)}']
        first = self.read()
        if first is not None:
            time.sleep(1.5 * self.interval)
        second = None if first is None else self.read()
        now = time.time()
        if first is None or second is None:
            lines.append(f'The rendezvous store did not answer within {_STORE_READ_LIMIT:g} s, so no rank\'s '
                         'heartbeat could be read. The store lives in rank 0\'s process, or in torchrun\'s '
                         'agent on MASTER_ADDR: that process is probably frozen, stopped or dead.')
            return '\n'.join(lines)
        silent, failed, behind, level = [], [], [], []
        for r in range(self.world_size):
            if r == self.rank:
                continue
            beat, again = first.get(r), second.get(r)
            if again is None:
                silent.append(f'rank {r} never sent a heartbeat: it did not reach the start of training '
                              '(stuck or slow while starting, or dead).')
                continue
            who = f'rank {r} (pid {again["pid"]} on host {again["host"]})'
            if again.get('failure'):
                failed.append(f'{who} stopped with {again["failure"]} at {again["phase"]}: see its log.')
            elif beat is not None and beat['seq'] == again['seq']:
                silent.append(f'{who} is silent: no heartbeat for {now - again["time"]:.0f} s, last at '
                              f'{again["phase"]}. The process is frozen, stopped (SIGSTOP), swapping or '
                              'dead, or its node is unreachable; `ps -o stat= -p PID` on its host shows T '
                              'for a stopped one.')
            elif again['phase'] != self.phase:
                behind.append(f'{who} is alive but has been at {again["phase"]} for '
                              f'{now - again["since"]:.0f} s: it is slow (a checkpoint save, evaluation, '
                              f'data loading). If that is expected, raise the timeout: {_TIMEOUT_HELP}.')
            else:
                level.append(r)
        lines += silent + failed + behind
        if level:
            lines.append(f'{_ranks(level)} {"is" if len(level) == 1 else "are"} alive and at {self.phase}, '
                         'as this rank.')
        if not (silent or failed or behind):
            lines.append('Every rank is alive and at the same point: the collective itself failed (network, '
                         'or ranks calling different collectives).')
        return '\n'.join(lines)


_heartbeat: Optional[Heartbeat] = None


def current_heartbeat() -> Optional[Heartbeat]:
    """This process's heartbeat, if one runs."""
    return _heartbeat


def start_heartbeat(timeout: Optional[float] = None) -> Optional[Heartbeat]:
    """Start this process's heartbeat once the default process group exists (idempotent).

    Returns None, and starts nothing, without a process group of two or more ranks.
    """
    global _heartbeat
    if _heartbeat is not None:
        if timeout is not None:
            _heartbeat.timeout = timeout
        return _heartbeat
    if not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_world_size() < 2:
        return None
    store = torch_dist.distributed_c10d._get_default_store()
    _heartbeat = Heartbeat(store, torch_dist.get_rank(), torch_dist.get_world_size(), timeout).start()
    return _heartbeat


def stop_heartbeat() -> None:
    """Stop this process's heartbeat (before the process group is destroyed)."""
    global _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None


class HeartbeatHook(Hook):
    """Tells the heartbeat where training is; registered by :func:`collectives_watched`, not by configs."""

    priority = 'HIGHEST'

    def __init__(self, heartbeat: Heartbeat) -> None:
        self.heartbeat = heartbeat

    def before_train(self, runner) -> None:
        self.heartbeat.set_phase(f'the start of training (iteration {runner.iter + 1})')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self.heartbeat.set_phase(f'iteration {runner.iter + 1}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.heartbeat.set_phase(f'the end of iteration {runner.iter + 1} (hooks: checkpoint, logging) or '
                                 'the loading of the next batch')

    def before_val(self, runner) -> None:
        self.heartbeat.set_phase(f'validation after iteration {runner.iter}')

    def after_val(self, runner) -> None:
        self.heartbeat.set_phase(f'training after the validation after iteration {runner.iter}')


@contextmanager
def collectives_watched(runner) -> Iterator[None]:
    """Around ``runner.train()``: keep the heartbeat informed, and turn a failed collective into a
    :class:`CollectiveTimeoutError` that names the silent ranks. Does nothing in a one-process run."""
    heartbeat = start_heartbeat()
    if heartbeat is None:
        yield
        return
    hook = HeartbeatHook(heartbeat)
    runner.register_hook(hook, priority='HIGHEST')
    try:
        yield
    except Exception as exc:
        heartbeat.set_failed(exc)
        if not is_collective_failure(exc):
            raise
        message = heartbeat.report(exc)
        print_log(message, logger='current', level=logging.ERROR)
        raise CollectiveTimeoutError(message) from exc
    finally:
        if hook in runner._hooks:
            runner._hooks.remove(hook)
