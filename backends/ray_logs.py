"""What a Ray job's log shows: the run's lines, not Ray's machinery (`launch --verbose`: all).

Ray prints every actor's output in the job's driver (`backends/ray_driver.py`), each line
prefixed `(ActorName pid=N, ip=...)`. By default `RayLogFilter` lets through the driver's own
lines, the training processes' lines (the worker prefixes them `[rank 0] ` under Ray) without
Ray's prefix, and the autoscaler's; Ray Train's controller (its start-up chatter, a C++
`PreemptionWatcher` error on every start, ~100 lines of report and traceback when a worker
dies) is read only for its failure reports, each told in one line:

    [launcher] rank 1 (pid 30439 on vm, 192.0.2.2) died: its process ended unexpectedly;
    Ray Train restarts the worker group (restart 1 of 2), which resumes from the newest ...

    sys.stdout = FilteredStream(sys.stdout, log_filter)   # in the driver, before ray.init
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

# "\x1b[36m(TrainController pid=30299, ip=10.0.0.2)\x1b[0m message": Ray's prefix, colours optional.
_RAY_PREFIX = re.compile(
    r"^(?:\x1b\[[0-9;]*m)?\((?P<who>[^()]*)\)(?:\x1b\[[0-9;]*m)? ?(?P<msg>.*)$"
)
_OURS = ("[rank ", "[launcher]")  # how the worker's lines start under Ray (launcher/worker.py)
_CONTROLLER = "TrainController"
_POLICY = re.compile(r"^\[FailurePolicy\] (\w+)")
_COUNT = re.compile(r"Error count: (\d+) \(max allowed: (-?\d+)\)")
_SNIPPET = re.compile(r"^\[Rank ([\d, ]+) Error Snippet\]")
_FIELDS = {
    "pid": re.compile(r"^\s*pid=(\d+),"),
    "host": re.compile(r"hostname='([^']*)'"),
    "ip": re.compile(r"node_ip='([^']*)'"),
}
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*)?(?:Error|Exception): .+")
_RESTART = "Attempting to start training worker group"
# A collective that lost its peer: this rank saw another one die (which Ray may report first).
_PEER_LOST = re.compile(
    r"Connection closed by peer|Connection reset by peer|remote worker crashing|"
    r"NCCL communicator was aborted|Broken pipe",
    re.IGNORECASE,
)


@dataclass
class _Failure:
    """One `[FailurePolicy]` report of Ray Train's controller, as far as it was read."""

    decision: str
    count: str = "?"
    limit: str = "?"
    ranks: str | None = None
    facts: dict[str, str] = field(default_factory=dict)
    reason: str | None = None

    def read(self, msg: str) -> None:
        if found := _COUNT.search(msg):
            self.count, self.limit = found.groups()
        elif (found := _SNIPPET.match(msg)) and self.ranks is None:
            self.ranks = found.group(1)
        elif "worker process has died" in msg and self.reason is None:
            self.reason = "its process ended unexpectedly"
        elif _EXCEPTION.match(msg.strip()) and self.ranks is not None and self.reason is None:
            self.reason = msg.strip()
        for name, pattern in _FIELDS.items():
            if name not in self.facts and (found := pattern.search(msg)):
                self.facts[name] = found.group(1)

    def line(self) -> str:
        who = f"rank {self.ranks}" if self.ranks else "a worker"
        where = ", ".join(v for v in (self.facts.get("host"), self.facts.get("ip")) if v)
        if "pid" in self.facts or where:
            pid = f"pid {self.facts['pid']}" if "pid" in self.facts else ""
            who += f" ({pid}{' on ' if pid and where else ''}{where})"
        reason = self.reason or "failed"
        what = f"died: {reason}"
        if _PEER_LOST.search(reason):
            # Ray Train reports the first error it polls: a survivor's collective error can
            # come before the dead rank's. Say it is a consequence, so no one debugs rank 0.
            short = reason if len(reason) <= 160 else reason[:157] + "..."
            what = f"stopped because another rank's process died (its collective failed: {short})"
        return f"[launcher] {who} {what}; {self._then()} (launch --verbose shows Ray's report)"

    def _then(self) -> str:
        if self.decision == "RETRY":
            return (
                f"Ray Train restarts the worker group (restart {self.count} of {self.limit}), "
                "which resumes from the newest checkpoint"
            )
        return f"no restarts left ({self.limit} allowed); the job fails"


class RayLogFilter:
    """Decides, line by line, what of the driver's output reaches the job's log."""

    def __init__(self) -> None:
        self._failure: _Failure | None = None
        self._lock = threading.Lock()

    def feed(self, line: str) -> list[str]:
        """The lines (without newlines) to print for one line of driver output."""
        with self._lock:
            found = _RAY_PREFIX.match(line)
            if found is None:
                return [line]  # the driver's own
            who, msg = found.group("who"), found.group("msg")
            if who.startswith("autoscaler"):
                return [line]  # pending resources, scaling: the user acts on these
            if msg.startswith(_OURS):
                return [msg]
            if not who.startswith(_CONTROLLER):
                return []
            out = []
            if (decision := _POLICY.match(msg)) or msg.startswith(_RESTART):
                out = self.finish()
                if decision:
                    self._failure = _Failure(decision.group(1))
            elif self._failure is not None:
                self._failure.read(msg)
            return out

    def finish(self) -> list[str]:
        """The line of a failure report still being read (at a restart, or at the end)."""
        failure, self._failure = self._failure, None
        return [failure.line()] if failure is not None else []


class FilteredStream:
    """A text stream that passes whole lines through a `RayLogFilter` to `stream`."""

    def __init__(self, stream: TextIO, log_filter: RayLogFilter) -> None:
        self.stream, self.log_filter = stream, log_filter
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
            kept = [out for line in lines for out in self.log_filter.feed(line)]
        if kept:
            self.stream.write("".join(f"{line}\n" for line in kept))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def close_report(self) -> None:
        """Print a failure report that no restart followed (call once the run ended)."""
        for line in self.log_filter.finish():
            self.stream.write(f"{line}\n")
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding: the real stream's
        return getattr(self.stream, name)
