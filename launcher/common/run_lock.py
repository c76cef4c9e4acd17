"""One live run per run directory: the second start of the same `--name` is refused.

    lock = claim_run(spec.run_dir, spec.name)   # the worker (global rank 0), for the whole run
    check_not_running(spec.run_dir, spec.name)  # the CLI, before it writes anything

The lock is a flock on `RUN_DIR/.running.lock`: it lasts as long as the process that holds it,
so a run that was killed (SIGKILL, a lost node) never blocks its own resume.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from launcher.common.files import lock_owner, try_lock
from launcher.errors import UserError

LOCK_FILE = ".running.lock"


def claim_run(run_dir: str, name: str) -> int:
    """Hold the run's lock until this process ends; UserError if another process has it."""
    fd = try_lock(Path(run_dir) / LOCK_FILE, f"pid {os.getpid()} on {socket.gethostname()}")
    if fd is None:
        raise UserError(_running_message(run_dir, name))
    return fd


def check_not_running(run_dir: str, name: str) -> None:
    """UserError if a live process holds the run's lock (a quick check; the worker's is final)."""
    path = Path(run_dir) / LOCK_FILE
    if not path.exists():
        return
    fd = try_lock(path, "")
    if fd is None:
        raise UserError(_running_message(run_dir, name))
    os.close(fd)


def _running_message(run_dir: str, name: str) -> str:
    owner = lock_owner(Path(run_dir) / LOCK_FILE) or "another process"
    return (
        f"run {name!r} is already running ({owner}; run dir {run_dir}). Start this one with "
        f"another --name, or wait until it ends and continue it with `launch resume {name}`."
    )
