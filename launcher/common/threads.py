"""Helper threads that start without stalling the training thread.

    thread = start_thread(serve_checkpoints, "checkpoint-writer")

`threading.Thread.start()` returns only once the new thread has run and the caller has the
GIL back. A new thread that goes straight into Python work (pickling a checkpoint, hashing a
recipe, spawning git) holds the GIL meanwhile, so the caller waits until it blocks or the
interpreter's 5 ms switch interval forces a handoff: measured at 1-3 ms of the training thread
per start on a 2-core machine (bench/overhead.py). Here the new thread first waits for a go
signal, given right after `start()` returns: the caller keeps running, and the helper gets the
GIL the way any background thread does, at the caller's next release (a backward pass, I/O)
or switch interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def start_thread(target: Callable[[], object], name: str, daemon: bool = True) -> threading.Thread:
    """Start `target()` on a new thread without waiting for its first slice of the GIL."""
    go = threading.Event()

    def run() -> None:
        go.wait()
        target()

    thread = threading.Thread(target=run, name=name, daemon=daemon)
    thread.start()
    go.set()
    return thread
