"""`RemoteSender`: the same `Sender` (`launcher.loggers.sender`), run in a helper process.

`Sender` talks to MLflow from the process that calls it; `RemoteSender` forwards each record
to a child process that owns a `Sender`, so MLflow's client code runs off the trainer's GIL.
Both offer `RecordSender`, so the logger and `launch sync` use either the same way.

MLflow's client is pure Python (SQLAlchemy for a local store, requests + protobuf for a
server): a few milliseconds of interpreter time per request. Done on a thread of the training
process, that time is taken from the training loop whenever the two want the GIL at once
(bench/overhead.py measured ~3% of a small model's fit). So the logger's background thread
keeps its logic (queue, spool, retries, exactly-once bookkeeping) and hands each record to a
child process that owns the `Sender`:

    sender = RemoteSender("sqlite:///outputs/mlflow.db", warn=print)
    sender.apply({"op": "metrics", "run": run_id, "metrics": [["loss", 0.5, 1718000000000, 3]]})

One child (`python -m launcher.loggers.remote_sender URI`) per tracking URI and training
process, started on first use (it imports mlflow, a second or two of its own CPU), shared by
the senders of that URI and closed when the last one is (`RemoteSender.close`, at the
logger's finalize). It ignores the job's signals (SIGTERM/SIGINT/SIGUSR*: the
trainer decides when to stop) and exits when the training process closes its end of the pipe,
also when that process is killed. If the child dies, requests raise `ConnectionError`: the
logger spools as when the store is unreachable, and the next request starts a new child.

Wire format: pickled tuples, each prefixed with its length: (record, runs, forget) to the
child, (status, value, runs, experiment_ids, warnings) back, over the child's stdin/stdout
(its own prints go to stderr).
"""

from __future__ import annotations

import atexit
import collections
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_HEADER = struct.Struct("!I")
_CLOSE_WAIT_S = 1.0
# A child's first reply also waits for its start-up (importing mlflow): not counted against a
# `reply_timeout`, which is about the store.
_START_S = 30.0
# The wire format (see the module doc), parent -> child and back.
Request = tuple[dict[str, Any], dict[str, str], bool]
Reply = tuple[str, bool | str, dict[str, str], dict[str, str], list[tuple[str, str]]]


class SenderRejected(Exception):
    """The store refused a request (not a connection problem); carries the child's message."""


def _write(stream: IO[bytes], obj: Request | Reply) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(receive: Callable[[int], bytes]) -> Any:
    """One message; `receive(n)` returns exactly n bytes or raises EOFError."""
    (size,) = _HEADER.unpack(receive(_HEADER.size))
    return pickle.loads(receive(size))


def _exactly(stream: IO[bytes]) -> Callable[[int], bytes]:
    """`receive` over a blocking stream: a short read means the other side is gone."""

    def receive(size: int) -> bytes:
        data = stream.read(size)
        if len(data) < size:
            raise EOFError
        return data

    return receive


class _Child:
    """One `python -m launcher.loggers.remote_sender URI` and its pipes."""

    def __init__(self, tracking_uri: str) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        # Started from the logger's thread while the training thread may be forking DataLoader
        # workers: close_fds=False makes Popen use posix_spawn, whose child never holds
        # Popen's error pipe (a worker forked meanwhile would keep it open, and Popen would
        # wait for it forever). Our own descriptors are non-inheritable anyway.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "launcher.loggers.remote_sender", tracking_uri],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=False,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both PIPEs
        self.requests: IO[bytes] = self.proc.stdin
        self.replies: IO[bytes] = self.proc.stdout
        self.lock = threading.Lock()
        self.answered = False  # started up: it has replied once
        self._deadline: float | None = None

    def call(self, request: Request, timeout: float | None = None) -> Reply:
        """Send one request and wait for its reply; `ConnectionError` if the child is gone or
        gives no reply within `timeout` seconds (then it is killed: its pipe is out of step)."""
        with self.lock:
            if timeout is not None:
                self._deadline = time.monotonic() + timeout + (0 if self.answered else _START_S)
            try:
                _write(self.requests, request)
                reply: Reply = _read(self._receive)
                self.answered = True
                return reply
            except TimeoutError as exc:
                self.proc.kill()
                raise ConnectionError(
                    f"no reply from the MLflow sender process within {timeout} s"
                ) from exc
            except (EOFError, OSError) as exc:
                self.proc.poll()
                raise ConnectionError(
                    f"the MLflow sender process exited (code {self.proc.returncode})"
                ) from exc
            finally:
                self._deadline = None

    def _receive(self, size: int) -> bytes:
        """Read `size` reply bytes; EOFError once the child is gone, TimeoutError past the
        call's deadline. Polls the child as well as the pipe: a process forked from ours
        meanwhile may hold the pipe's write end open."""
        fd, data = self.replies.fileno(), b""
        while len(data) < size:
            wait = 1.0 if self._deadline is None else min(1.0, self._deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], max(0.0, wait))
            if not ready:
                if self.proc.poll() is not None:
                    raise EOFError
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    raise TimeoutError
                continue
            chunk = os.read(fd, size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        # EOF: an idle child exits at once. One still starting (nothing sent yet) or stuck on
        # a hung server is not waited for: what it was sending stays unacked in the spool and
        # is sent again.
        try:
            self.requests.close()
            if not self.answered:
                raise subprocess.TimeoutExpired(self.proc.args, 0)
            self.proc.wait(timeout=_CLOSE_WAIT_S)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


_children: dict[str, _Child] = {}
_users: collections.Counter[str] = collections.Counter()  # open RemoteSenders per URI
_children_lock = threading.Lock()


def _child_for(tracking_uri: str) -> _Child:
    with _children_lock:
        child = _children.get(tracking_uri)
        if child is None or not child.alive():
            child = _children[tracking_uri] = _Child(tracking_uri)
        return child


def _release(tracking_uri: str) -> None:
    """One sender of `tracking_uri` is done; the last one closes the child."""
    with _children_lock:
        _users[tracking_uri] -= 1
        if _users[tracking_uri] > 0:
            return
        del _users[tracking_uri]
        child = _children.pop(tracking_uri, None)
    if child is not None:
        child.close()


def prestart(tracking_uri: str) -> None:
    """Start the child for `tracking_uri` now, before this process imports torch: its own
    start-up (importing mlflow, opening or creating the store) then overlaps the trainer's,
    and a short run's exit does not wait for it. A `RemoteSender` of that URI uses it; unused,
    it is closed at exit."""
    try:
        _child_for(tracking_uri)
    except OSError:
        pass  # the logger starts one (or spools) when it needs it


@atexit.register
def _close_children() -> None:
    with _children_lock:
        for child in _children.values():
            child.close()
        _children.clear()


class RemoteSender:
    """`Sender`'s interface (as the logger and `spool.replay` use it), served by a child."""

    def __init__(self, tracking_uri: str, warn: Callable[[str, str], None] | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.warn = warn or (lambda kind, message: None)
        self.runs: dict[str, str] = {}  # placeholder or stale id -> real run id (mirrored)
        self.experiment_ids: dict[str, str] = {}
        self.reply_timeout: float | None = None  # per record; None: the store's own timeouts
        # A shared child may have cached what the server held for an earlier logger: a new
        # session asks the server again.
        self._forget = True
        self._closed = False
        with _children_lock:
            _users[tracking_uri] += 1
        try:
            _child_for(tracking_uri)  # start it now: its mlflow import overlaps our start-up
        except OSError:
            pass  # apply() reports it as a connection error, so records get spooled

    def resolve(self, ref: str) -> str:
        return self.runs.get(ref, ref)

    def forget_server_state(self) -> None:
        self._forget = True  # sent with the next request

    def close(self) -> None:
        """Done sending: the child exits once no other sender of its URI is open."""
        if not self._closed:
            self._closed = True
            _release(self.tracking_uri)

    def apply(self, record: dict[str, Any]) -> bool:
        """Send one record through the child; raises as `Sender.apply` would, for the caller's
        purposes: `ConnectionError` when the store (or the child) is unreachable, else
        `SenderRejected`."""
        request: Request = (record, dict(self.runs), self._forget)
        self._forget = False
        try:
            child = _child_for(self.tracking_uri)
        except OSError as exc:  # cannot start a process: handled like an unreachable store
            raise ConnectionError(f"cannot start the MLflow sender process: {exc}") from exc
        status, value, runs, experiment_ids, warnings = child.call(request, self.reply_timeout)
        self.runs.update(runs)
        self.experiment_ids.update(experiment_ids)
        for kind, message in warnings:
            self.warn(kind, message)
        if status == "connection":
            self._forget = True
            raise ConnectionError(value)
        if status == "rejected":
            raise SenderRejected(value)
        return bool(value)


def serve(tracking_uri: str, requests: IO[bytes], replies: IO[bytes]) -> None:
    """The child's loop: apply records until the parent closes the pipe."""
    from launcher.loggers.sender import Sender
    from launcher.tracking.reader import is_connection_error

    warnings: list[tuple[str, str]] = []
    sender = Sender(tracking_uri, warn=lambda kind, message: warnings.append((kind, message)))
    receive = _exactly(requests)
    while True:
        try:
            record, runs, forget = _read(receive)
        except EOFError:
            return
        sender.runs.update(runs)
        if forget:
            sender.forget_server_state()
        status: str
        value: bool | str
        try:
            status, value = "ok", sender.apply(record)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            kind = "connection" if is_connection_error(exc) else "rejected"
            status, value = kind, f"{type(exc).__name__}: {exc}"
        try:
            _write(replies, (status, value, sender.runs, sender.experiment_ids, warnings[:]))
        except BrokenPipeError:  # the training process died mid-request: nobody to tell
            os._exit(0)  # not `return`: flushing the unsent reply at exit would raise again
        warnings.clear()


def main() -> None:
    """The child's entry point: `python -m launcher.loggers.remote_sender TRACKING_URI`."""
    for name in ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)  # the trainer decides when to stop
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything MLflow prints goes to stderr, never into the reply pipe
    sys.stdout = sys.stderr
    serve(sys.argv[1], sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
