"""One interface for every scheduler: `Backend`, `Plan`, `Job`, `JobState`, the job handle.

A backend turns a `LaunchSpec` into running worker processes in two steps, the way TorchX's
`submit_dryrun` and `schedule` do: `plan(spec)` decides everything without doing any of it,
and `submit(plan)` performs exactly that plan. `plan.render()` is the `--dry-run` text, so a
dry run is the real submission minus the I/O. A new scheduler is one new module in
`backends/` (its options, its plan, its backend) plus one line in `backends/__init__.py`.

    backend = get_backend("slurm")
    plan = backend.plan(spec)               # SlurmPlan; nothing written, nobody contacted
    print(plan.render())                    # the sbatch script, exactly as it will be sent
    job = backend.submit(plan)              # -> Job(handle="slurm://12345", ...)
    backend.status(job)                     # -> JobState.RUNNING
    for line in backend.logs(job, follow=True): print(line, end="")
"""

from __future__ import annotations

import enum
import functools
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, final

from launcher.errors import UserError
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
    LOST = "LOST"  # its processes died without a word: heartbeat silent (launcher.common.heartbeat)
    UNKNOWN = "UNKNOWN"

    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = {
    JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.LOST
}  # fmt: skip


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
class Plan(ABC):
    """Everything one submission of `spec` will do, decided before any of it is done.

    Each backend's plan is a dataclass of what it sends (the sbatch script, the Ray job
    request, the worker commands); `render()` shows it as text.
    """

    spec: LaunchSpec

    @abstractmethod
    def render(self) -> str:
        """The `--dry-run` text: exactly what `Backend.submit(plan)` sends or runs."""


PlanT = TypeVar("PlanT", bound=Plan)


def parse_handle(handle: str) -> tuple[str, str]:
    """Split `slurm://4242` into `("slurm", "4242")`. The only place handles are parsed."""
    backend, sep, native = handle.partition("://")
    if not sep or not backend or not native:
        raise ValueError(f"not a job handle: {handle!r} (expected BACKEND://ID, e.g. slurm://42)")
    return backend, native


class Backend(ABC, Generic[PlanT]):
    """Plan runs, submit plans, and ask about the jobs they became.

    Subclasses implement `plan`, `schedule`, `status`, `logs` and `cancel`; `submit` is the
    same for all: `schedule(plan(spec))`.
    """

    name: ClassVar[str] = ""
    # The scheduler knows whether a job's processes live (SLURM, Ray). False: only the run's
    # heartbeat tells (local), so a RUNNING job whose heartbeat went stale is LOST.
    tracks_processes: ClassVar[bool] = True

    @abstractmethod
    def plan(self, spec: LaunchSpec) -> PlanT:
        """Decide how `spec` would be started, without side effects.

        Writes no file and contacts no scheduler, so it works on a machine without one. A
        setting that cannot work (a misspelled option, a wrong type) raises `UserError` here.
        """

    @abstractmethod
    def schedule(self, plan: PlanT) -> Job:
        """Perform `plan`: check the cluster can take it, write what it needs, submit it.

        Backends that run in the foreground (local, a temporary local Ray) return once the
        run is over, with `job.extra["exit_code"]`; the others return once it is queued.
        """

    @final
    def submit(self, plan: PlanT | LaunchSpec) -> Job:
        """Start a run: `submit(spec)` is `schedule(plan(spec))`; a plan is performed as is.

        Writes `RUN_DIR/launch.json` first. A refusal (a `UserError`: the cluster cannot take
        it, the scheduler said no) leaves the run dir as it found it: none, if it was new.

        Example: `plan = backend.plan(spec); print(plan.render()); job = backend.submit(plan)`.
        """
        if isinstance(plan, LaunchSpec):
            plan = self.plan(plan)
        with undone_on_refusal(Path(plan.spec.run_dir)):
            plan.spec.write()
            return self.schedule(plan)

    @abstractmethod
    def status(self, job: Job) -> JobState:
        """The job's state, mapped onto `JobState` (never the scheduler's own words)."""

    @abstractmethod
    def logs(self, job: Job, rank: int | None = None, follow: bool = False) -> Iterator[str]:
        """Yield log lines (rank 0 unless `rank`); with `follow`, until the job ends."""

    @abstractmethod
    def cancel(self, job: Job) -> None:
        """Stop a pending or running job (`UserError` when that is not possible)."""

    def wait(self, job: Job, poll_seconds: float = 2.0) -> JobState:
        """Block until the job reaches a terminal state and return it."""
        while True:
            state = self.status(job)
            if state.is_terminal():
                return state
            time.sleep(poll_seconds)

    def new_job(self, spec: LaunchSpec, native_id: str, **extra: Any) -> Job:
        """The `Job` for `spec` once the scheduler gave it `native_id` (`<name>://<id>`)."""
        return Job(
            handle=f"{self.name}://{native_id}",
            backend=self.name,
            run_dir=spec.run_dir,
            recipe=spec.recipe,
            name=spec.name,
            extra=extra,
        )


@contextmanager
def undone_on_refusal(folder: Path) -> Iterator[None]:
    """Remove what appeared under `folder` (and `folder`, if it is new) when a `UserError`
    leaves the block, so a refused submission leaves no litter.

    Example: `with undone_on_refusal(run_dir): write_files(); raise UserError("no")`.
    """
    new_root = _first_missing(folder)
    before = set() if new_root else {p for p in folder.rglob("*")}
    try:
        yield
    except UserError:
        if new_root is not None:
            shutil.rmtree(new_root, ignore_errors=True)
        else:
            # Deepest first, so a new folder is empty when its turn comes.
            for path in sorted(set(folder.rglob("*")) - before, reverse=True):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


def _first_missing(folder: Path) -> Path | None:
    """The topmost folder of `folder`'s path that does not exist yet (None: it exists)."""
    missing = None
    for candidate in [folder, *folder.parents]:
        if candidate.exists():
            return missing
        missing = candidate
    return missing


def whole_lines(chunks: Iterable[str]) -> Iterator[str]:
    """Text that arrives in pieces (a growing file, a log stream), as whole lines.

    Example: `list(whole_lines(["a\nb", "c\n", "d"]))` -> `["a\n", "bc\n", "d"]`.
    """
    pending = ""
    for chunk in chunks:
        *complete, pending = (pending + chunk).split("\n")
        yield from (f"{line}\n" for line in complete)
    if pending:
        yield pending  # the writer ended without a newline


def follow_file(
    path: Path | Callable[[], Path], done: Callable[[], bool], poll_s: float = 0.5
) -> Iterator[str]:
    """Yield the lines of a log file as they are written, until `done()` says the writer ended.

    `path` may be a function, asked again until the file exists (where a log lands can
    depend on how far the job got). The file may not exist yet: it is waited for, and nothing
    is yielded when `done()` turns true first. `done=lambda: True` reads what is there now.

    Example: `follow_file(log, done=lambda: backend.status(job).is_terminal())`.
    """
    return whole_lines(_file_chunks(path, done, poll_s))


def _file_chunks(
    path: Path | Callable[[], Path], done: Callable[[], bool], poll_s: float
) -> Iterator[str]:
    locate = path if callable(path) else functools.partial(Path, path)
    while not (found := locate()).is_file():
        if done():
            return
        time.sleep(poll_s)
    with open(found, errors="replace") as f:
        while True:
            chunk = f.read()
            if chunk:
                yield chunk
            elif done():
                yield f.read()  # whatever landed since the last read
                return
            else:
                time.sleep(poll_s)
