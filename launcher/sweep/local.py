"""Run a sweep's trials on this host: one after another, or `max_parallel` at once.

    code = run_trials(record, pending_trials(record), on_end=lambda index, code: ...)

Each trial is `launch resume TRIAL_RUN_DIR` in a process of its own (its launch.json is
written before), so it is recorded, resumed from its own checkpoint and stopped exactly as a
single local run is. Ctrl-C or `launch cancel SWEEP` (SIGTERM to this process) is passed to
every running trial, which checkpoints and ends KILLED; no further trial starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from launcher.errors import INTERRUPTED_EXIT_CODE, TERMINATED_EXIT_CODE
from launcher.sweep.record import SweepRecord, TrialRecord

TRIAL_LOG = "sweep_trial.log"  # a trial's console output when several run at once


def is_finished(trial: TrialRecord) -> bool:
    """The trial's run ended done: its newest checkpoint is a finished run's last."""
    from launcher.train.checkpoint_store import CheckpointManager

    return CheckpointManager(str(Path(trial.run_dir) / "checkpoints" / "resume")).is_finished()


def pending_trials(record: SweepRecord) -> list[TrialRecord]:
    """The trials still to run (all of a new sweep; the unfinished ones of a resumed one)."""
    return [t for t in record.trials if not is_finished(t)]


def trial_process_command(trial: TrialRecord) -> list[str]:
    """What starts one trial: `launch resume RUN_DIR` (from its checkpoint, when it has one)."""
    return [sys.executable, "-m", "launcher.cli.app", "resume", trial.run_dir]


def run_trials(
    record: SweepRecord,
    trials: list[TrialRecord],
    on_end: Callable[[TrialRecord, int], None],
    poll_s: float = 0.2,
) -> int:
    """Run `trials`, at most `record.max_parallel` at once; `on_end(trial, exit code)` after
    each. Returns 0 when all succeeded, 130/143 when stopped by a signal, else 1."""
    queue = list(trials)
    running: dict[int, tuple[TrialRecord, subprocess.Popen[bytes]]] = {}
    stop = _Stop(lambda: [proc for _t, proc in running.values()])
    failed = False
    try:
        while queue or running:
            while queue and len(running) < record.max_parallel and stop.signum is None:
                trial = queue.pop(0)
                proc = _start(trial, record.max_parallel)
                running[trial.index] = (trial, proc)
                stop.reach(proc)  # a stop that came while it started reaches it too
            if stop.signum is not None:
                queue.clear()
            for index, (trial, proc) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[index]
                failed = failed or code != 0
                on_end(trial, code)
            time.sleep(poll_s)
    finally:
        stop.restore()
    if stop.signum is not None:
        return INTERRUPTED_EXIT_CODE if stop.signum == signal.SIGINT else TERMINATED_EXIT_CODE
    return 1 if failed else 0


def _start(trial: TrialRecord, max_parallel: int) -> subprocess.Popen[bytes]:
    print(f"trial {trial.index} ({trial.name}): starting", file=sys.stderr, flush=True)
    if max_parallel == 1:  # one at a time: its progress on this console, as a single run's
        return subprocess.Popen(trial_process_command(trial), start_new_session=True)
    env = dict(os.environ)
    # P trials share this host's cores (a trial's --threads, or OMP_NUM_THREADS if set, wins).
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max_parallel)))
    log = Path(trial.run_dir) / TRIAL_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            trial_process_command(trial), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=env,
        )  # fmt: skip


class _Stop:
    """Ctrl-C, SIGTERM (`launch cancel SWEEP`) or a closed terminal: passed to every running
    trial (each checkpoints, ends KILLED); no new trial starts."""

    def __init__(self, procs: Callable[[], list[subprocess.Popen[bytes]]]) -> None:
        self.procs = procs
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._reached: set[int] = set()  # trials already sent the stop
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._previous[sig] = signal.signal(sig, self._forward)

    def _forward(self, signum: int, _frame: object) -> None:
        self.signum = self.signum or signum
        for proc in self.procs():  # each signal: a second Ctrl-C interrupts them at once
            self._send(proc, signum)

    def reach(self, proc: subprocess.Popen[bytes]) -> None:
        """Pass a stop received while `proc` started to it, unless it got it already."""
        if self.signum is not None and proc.pid not in self._reached:
            self._send(proc, self.signum)

    def _send(self, proc: subprocess.Popen[bytes], signum: int) -> None:
        if proc.poll() is None:
            self._reached.add(proc.pid)
            proc.send_signal(signal.SIGINT if signum == signal.SIGHUP else signum)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
