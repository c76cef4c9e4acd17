"""Test helper: fork lingering processes while a helper thread works, as DataLoader workers are
forked by the training thread while the trainer's helper threads start subprocesses."""

from __future__ import annotations

import os
import threading
import time


def fork_while(thread: threading.Thread, linger_s: float = 3.0, gap_s: float = 0.003,
               limit: int = 300, join_s: float = 60.0) -> int:  # fmt: skip
    """Start `thread`; until it ends, fork children that keep every inherited descriptor for
    `linger_s`; join it and reap them. Returns how many were forked."""
    thread.start()
    children = []
    try:
        # Fork at least once, right away: a thread whose work takes a few milliseconds may be
        # done before a first `is_alive()` check, and then nothing was tested.
        while True:
            pid = os.fork()
            if pid == 0:
                time.sleep(linger_s)
                os._exit(0)
            children.append(pid)
            time.sleep(gap_s)
            if not thread.is_alive() or len(children) >= limit:
                break
        thread.join(join_s)
    finally:
        for pid in children:
            os.waitpid(pid, 0)
    return len(children)
