"""One interface for every scheduler: `Backend`, `Job`, `JobState`, and the job handle.

A backend turns a `LaunchSpec` into running worker processes and answers questions about
them. A new scheduler is one new module in `backends/` plus one line in `backends/__init__.py`.

    backend = get_backend("slurm")
    job = backend.submit(spec)              # -> Job(handle="slurm://12345", ...)
    backend.status(job)                     # -> JobState.RUNNING
    for line in backend.logs(job, follow=True): print(line, end="")
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from launcher.spec import LaunchSpec


class JobState(str, enum.Enum):
    """Scheduler-neutral job states; every backend maps its native states onto these."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    REQUEUED = "REQUEUED"  # preempted or timed out, waiting to run again
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN = "UNKNOWN"

    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT}


@dataclass
class Job:
    """A submitted run. `handle` is `<backend>://<native id>`, e.g. `slurm://4242`."""

    handle: str
    backend: str
    run_dir: str
    recipe: str = ""
    name: str = ""
    submitted_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific (address, pid...)

    @property
    def native_id(self) -> str:
        return parse_handle(self.handle)[1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DryRun:
    """What `submit(spec, dry_run=True)` returns: the exact thing that would be submitted."""

    backend: str
    text: str  # sbatch script, Ray job submission, or worker command lines


def parse_handle(handle: str) -> tuple[str, str]:
    """Split `slurm://4242` into `("slurm", "4242")`. The only place handles are parsed."""
    backend, sep, native = handle.partition("://")
    if not sep or not backend or not native:
        raise ValueError(f"not a job handle: {handle!r} (expected BACKEND://ID, e.g. slurm://42)")
    return backend, native


class Backend(ABC):
    """Submit runs and ask about them. Subclasses implement the `_`-free abstract methods."""

    name: str = ""

    @abstractmethod
    def submit(self, spec: LaunchSpec, dry_run: bool = False) -> Job | DryRun:
        """Start `spec` (or describe exactly what would be started, when `dry_run`)."""

    @abstractmethod
    def status(self, job: Job) -> JobState: ...

    @abstractmethod
    def logs(self, job: Job, rank: int | None = None, follow: bool = False) -> Iterator[str]:
        """Yield log lines (rank 0 unless `rank`); with `follow`, until the job ends."""

    @abstractmethod
    def cancel(self, job: Job) -> None: ...

    def wait(self, job: Job, poll_seconds: float = 2.0) -> JobState:
        """Block until the job reaches a terminal state and return it."""
        while True:
            state = self.status(job)
            if state.is_terminal():
                return state
            time.sleep(poll_seconds)
