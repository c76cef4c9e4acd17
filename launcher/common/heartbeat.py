"""A run's heartbeat: a file in its run dir that a live run touches every few seconds.

    with beating(run_dir):                   # the worker, on global rank 0, while it trains
        train()
    heartbeat_age(run_dir)                   # seconds since the last beat; None: not beating
    is_lost(run_dir)                         # beating once, silent for STALE_S: it died

The file exists only while a process claims to be alive: `beating` removes it when the block
ends, whatever ended it (an exception, a requeue), so a file left behind and not touched for
`STALE_S` means the processes died without a word (SIGKILL, a lost node). A helper thread
beats, never the training thread: one `os.utime` every `INTERVAL_S`, no per-step cost. The
command line reads it (`launch runs`, `launch jobs`) without importing anything heavy.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from launcher.common.threads import start_thread

HEARTBEAT_FILE = "heartbeat"
INTERVAL_S = 5.0
# Six missed beats: a busy machine (a checkpoint write, a slow filesystem) skips one or two.
STALE_S = 30.0


def heartbeat_path(run_dir: str | os.PathLike[str]) -> Path:
    """`RUN_DIR/heartbeat`."""
    return Path(run_dir) / HEARTBEAT_FILE


@contextlib.contextmanager
def beating(run_dir: str | os.PathLike[str], interval_s: float = INTERVAL_S) -> Iterator[None]:
    """Touch `RUN_DIR/heartbeat` every `interval_s` on a helper thread while the block runs."""
    path = heartbeat_path(run_dir)
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(OSError):  # a full or gone disk must not end the run
                path.touch()
            if stop.wait(interval_s):
                return

    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()  # at once: a run is never seen "lost" before its thread's first beat
    thread = start_thread(beat, "launcher-heartbeat")
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval_s)
        path.unlink(missing_ok=True)


def heartbeat_age(run_dir: str | os.PathLike[str]) -> float | None:
    """Seconds since the run's last beat; None when no process claims to be running it."""
    try:
        return max(0.0, time.time() - heartbeat_path(run_dir).stat().st_mtime)
    except OSError:
        return None


def is_lost(run_dir: str | os.PathLike[str] | None, stale_s: float | None = None) -> bool:
    """The run's processes died without a word: its heartbeat stopped `stale_s` ago."""
    if not run_dir:
        return False
    age = heartbeat_age(run_dir)
    return age is not None and age > (STALE_S if stale_s is None else stale_s)
