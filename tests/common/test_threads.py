"""`start_thread`: the caller does not wait for the new thread's first slice of the GIL."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from launcher.common.threads import start_thread


@pytest.fixture
def slow_switching():
    """A 200 ms switch interval makes "waits for the helper's GIL slice" unmistakable."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.2)
    yield 0.2
    sys.setswitchinterval(previous)


def busy_python(seconds: float, done: list) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:  # pure Python: holds the GIL until forced to switch
        pass
    done.append(threading.current_thread().name)


def test_the_caller_gets_on_while_the_helper_works(slow_switching):
    done: list = []
    started = time.perf_counter()
    thread = start_thread(lambda: busy_python(1.0, done), "helper")
    returned = time.perf_counter() - started
    thread.join()
    assert done == ["helper"] and thread.daemon
    assert returned < slow_switching / 2

    # What it avoids: a plain Thread.start() returns only when the busy helper is forced to
    # hand the GIL back, a whole switch interval later.
    started = time.perf_counter()
    plain = threading.Thread(target=busy_python, args=(1.0, done))
    plain.start()
    waited = time.perf_counter() - started
    plain.join()
    assert waited >= slow_switching / 2


def test_a_non_daemon_thread_runs_its_target():
    results: list = []
    thread = start_thread(lambda: results.append(1), "worker", daemon=False)
    thread.join()
    assert results == [1] and not thread.daemon
