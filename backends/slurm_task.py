"""What runs inside a SLURM job: `SlurmTask`, the callable submitit pickles and every task runs.

    task = SlurmTask("/runs/exp/name/launch.json", max_requeues=3, signal_grace_s=60)
    DelayedSubmission(task).dump(pickle)   # backends/slurm.py; submitit's runner calls it
                                           # on each task: launcher.worker.main, then requeue

Each task runs the same worker entry point as the local backend. When the worker exits with
`REQUEUE_EXIT_CODE` (it checkpointed on SIGUSR2/SIGTERM at a step boundary every rank agreed
on), every rank drops a marker file; global rank 0 waits for all markers, says in the log
whether the job was preempted or reached its time limit, and requeues it with
`scontrol requeue` (SLURM ends a preempted job that exits by itself as COMPLETED, so we
always requeue ourselves) unless `max_requeues` (counted by `SLURM_RESTART_COUNT`) is spent.
On restart the worker resumes from that checkpoint. Only this module and `launcher.cluster_env`
read SLURM variables.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from backends.scontrol import job_state, show_job
from launcher.common.files import atomic_write_text
from launcher.errors import REQUEUE_EXIT_CODE

# The signals SLURM sends before a time limit (--signal=USR2@grace) or on preemption.
_PREEMPT_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)
OUTCOME_SUFFIX = "_outcome.json"  # <folder>/<job id>_outcome.json: how the job ended


def outcome_path(folder: str | os.PathLike[str], job_id: str) -> Path:
    """Where the final outcome of job `job_id` is recorded (read by `SlurmBackend.status`)."""
    return Path(folder) / f"{job_id}{OUTCOME_SUFFIX}"


def write_outcome(folder: str | os.PathLike[str], job_id: str, state: str, **info: Any) -> None:
    """Record how a job ended, atomically; SLURM forgets finished jobs after `MinJobAge`."""
    record = {"state": state, "time": time.time(), **info}
    atomic_write_text(outcome_path(folder, job_id), json.dumps(record))


class SlurmTask:
    """The picklable in-job callable: run the worker, then requeue or finish the job."""

    def __init__(
        self,
        spec_path: str,
        max_requeues: int = 3,
        signal_grace_s: int = 60,
        marker_timeout_s: float = 20.0,
    ) -> None:
        self.spec_path = spec_path
        self.max_requeues = max_requeues
        self.signal_grace_s = signal_grace_s
        self.marker_timeout_s = marker_timeout_s

    def __repr__(self) -> str:  # shown by submitit in its log
        return f"SlurmTask({self.spec_path!r}, max_requeues={self.max_requeues})"

    def __call__(self) -> int:
        early = _EarlySignals()  # replace submitit's USR2 handler before anything else
        quiet_submitit()
        from launcher import worker

        env = _SlurmEnv.from_environ()

        def no_requeue() -> str | None:  # asked by the trainer when a preemption comes
            if env.restarts < self.max_requeues or _recorded_state(env) == "CANCELLED":
                return None  # requeued; or `launch cancel`, which ends the run KILLED
            return (f"requeue budget spent: interrupted {env.restarts + 1} times, "
                    f"max_requeues={self.max_requeues}")  # fmt: skip

        code = worker.main(self.spec_path, no_requeue=no_requeue)
        early.install()  # the trainer restores handlers on exit; keep requeue's SIGTERM out
        if code == 0:
            if env.rank == 0:
                write_outcome(env.folder, env.job_id, "SUCCEEDED", restarts=env.restarts)
            return 0
        if code != REQUEUE_EXIT_CODE:
            if env.rank == 0:
                write_outcome(env.folder, env.job_id, "FAILED", exit_code=code)
            raise SystemExit(code)  # no result pickle: the job failed
        return self._requeue(env, early.received)

    def _requeue(self, env: _SlurmEnv, early_signals: list[str]) -> int:
        marker_dir = Path(env.folder) / f"{env.job_id}_requeue_{env.restarts}"
        marker_dir.mkdir(parents=True, exist_ok=True)
        (marker_dir / str(env.rank)).touch()
        if env.rank != 0:
            raise SystemExit(0)  # rank 0 requeues; the others leave cleanly
        _wait_for_markers(marker_dir, env.ntasks, self.marker_timeout_s)
        info = show_job(env.job_id)
        reason = interruption_reason(info, grace_s=self.signal_grace_s)
        signals = f" (signal before the trainer was ready: {', '.join(early_signals)})"
        _say(
            f"job {env.job_id} checkpointed and stopped: {reason}; state "
            f"{job_state(info).value}, restart {env.restarts} of max {self.max_requeues}"
            f"{signals if early_signals else ''}"
        )
        cancelled = _recorded_state(env) == "CANCELLED"  # `launch cancel` wrote it first
        if cancelled or info.get("JobState") != "RUNNING":
            # scancel, or past the hard time limit: SLURM is ending the job already (and a
            # preemption past its GraceTime is requeued by SLURM itself).
            why = "cancelled with `launch cancel`" if cancelled else "SLURM is ending it"
            _say(f"not requeueing: {why}; `launch resume` continues from the checkpoint")
            raise SystemExit(0)
        if env.restarts >= self.max_requeues:
            _say(f"not requeueing: max_requeues={self.max_requeues} reached; resume it with "
                 f"`launch resume {env.job_id}`")  # fmt: skip
            write_outcome(env.folder, env.job_id, "FAILED", exit_code=REQUEUE_EXIT_CODE,
                          reason=f"{reason}; max_requeues reached")  # fmt: skip
            raise SystemExit(REQUEUE_EXIT_CODE)
        result = subprocess.run(
            ["scontrol", "requeue", env.job_id], capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            _say(f"scontrol requeue {env.job_id} failed: {result.stderr.strip()}")
            raise SystemExit(REQUEUE_EXIT_CODE)
        _say(f"requeued job {env.job_id} ({reason}); it resumes from the checkpoint. SLURM "
             "now logs '*** ... CANCELLED ... DUE TO JOB REQUEUE': its normal requeue notice")  # fmt: skip
        raise SystemExit(0)


def interruption_reason(info: dict[str, str], grace_s: int) -> str:
    """Tell a preemption from a time limit using `scontrol show job` fields.

    Example: `interruption_reason({"PreemptTime": "2024-01-01T10:00:00", ...}, 60)`
    -> `"preempted at 2024-01-01T10:00:00"`.
    """
    preempt, start = info.get("PreemptTime", "None"), info.get("StartTime", "")
    # ISO timestamps compare as text; a PreemptTime from before this start is an old one.
    if preempt not in ("None", "Unknown", "") and preempt >= start:
        return f"preempted at {preempt}"
    if info.get("JobState", "RUNNING") != "RUNNING":
        return f"ending (ExitCode={info.get('ExitCode', '?')}): cancelled or past its time limit"
    limit, run = _seconds(info.get("TimeLimit", "")), _seconds(info.get("RunTime", ""))
    if limit is not None and run is not None and limit - run <= grace_s + 60:
        return f"time limit approaching ({info['RunTime']} of {info['TimeLimit']})"
    return "signalled (not a preemption or a time limit: scancel --signal, or the admin)"


def _recorded_state(env: _SlurmEnv) -> str | None:
    path = outcome_path(env.folder, env.job_id)
    try:
        return json.loads(path.read_text()).get("state")
    except (OSError, ValueError):
        return None


def _seconds(duration: str) -> int | None:
    """SLURM's `[D-]HH:MM:SS` (or MM:SS) as seconds; None for UNLIMITED or junk."""
    match = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", duration)
    if not match:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _wait_for_markers(marker_dir: Path, ntasks: int, timeout_s: float) -> None:
    # Every rank's checkpoint part must be on disk before the requeue kills the job's tasks.
    deadline = time.monotonic() + timeout_s
    while len(list(marker_dir.iterdir())) < ntasks and time.monotonic() < deadline:
        time.sleep(0.2)
    done = len(list(marker_dir.iterdir()))
    if done < ntasks:
        _say(f"only {done} of {ntasks} tasks reported their checkpoint; requeueing anyway")


class _DropSignalBypass(logging.Filter):
    """submitit logs "Bypassing signal SIGCONT" (twice) on every requeue: normal, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Bypassing signal")


def quiet_submitit() -> None:
    """Drop submitit's normal-requeue lines from the SLURM log (kept under `--verbose`)."""
    if os.environ.get("LAUNCHER_VERBOSE") != "1":
        logging.getLogger("submitit").addFilter(_DropSignalBypass())


def _say(message: str) -> None:
    print(f"[launcher.slurm] {message}", file=sys.stderr, flush=True)


class _SlurmEnv:
    """The few facts about the job this module needs (read once from the environment)."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.job_id = environ.get("SLURM_JOB_ID", "0")
        self.rank = int(environ.get("SLURM_PROCID", "0"))
        self.ntasks = int(environ.get("SLURM_NTASKS", "1"))
        self.restarts = int(environ.get("SLURM_RESTART_COUNT", "0"))
        self.folder = environ.get("SUBMITIT_FOLDER", ".")

    @classmethod
    def from_environ(cls) -> _SlurmEnv:
        return cls(dict(os.environ))


class _EarlySignals:
    """Flag-only USR2/TERM handlers for the seconds before the trainer installs its own.

    submitit's handler would checkpoint the pickle, `scontrol requeue` and `sys.exit` from
    inside the signal handler on rank 0 only; ours just notes the signal. A signal that lands
    before the trainer is ready is delivered again as soon as the trainer's handler is in place,
    so an early preemption still ends in a checkpoint instead of a kill.
    """

    def __init__(self) -> None:
        self.received: list[str] = []
        self._handler = self._note  # one bound method, so `getsignal(...) is` can find it
        self.install()

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in _PREEMPT_SIGNALS:
                signal.signal(sig, self._handler)

    def _note(self, signum: int, _frame: Any) -> None:
        self.received.append(signal.Signals(signum).name)
        threading.Thread(target=self._redeliver, args=(signum,), daemon=True).start()

    def _redeliver(self, signum: int) -> None:
        while signal.getsignal(signum) is self._handler:
            time.sleep(0.1)
        os.kill(os.getpid(), signum)
