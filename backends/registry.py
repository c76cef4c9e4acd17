"""A local record of submitted jobs, whatever the backend: one JSON file per job.

    registry = JobRegistry()                  # $LAUNCHER_HOME, else ~/.launcher
    registry.record(job, spec)                # after Backend.submit
    registry.get("slurm://4242")              # or "4242", or the run name, or a unique prefix
    registry.list()                           # newest first

Files are written atomically (temp file + rename) so readers never see half a record, and
read-modify-write updates hold an exclusive `flock`, so several `launch` processes can share
one registry.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.base import Job
from launcher.common.files import atomic_write_text
from launcher.errors import UserError
from launcher.spec import LaunchSpec


@dataclass
class JobRecord:
    """What the registry keeps about one job: the job, its launch spec, its MLflow run."""

    job: Job
    spec: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job.to_dict(), "spec": self.spec, "mlflow_run_id": self.mlflow_run_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        return cls(Job(**data["job"]), data.get("spec") or {}, data.get("mlflow_run_id"))


def default_root() -> Path:
    """`$LAUNCHER_HOME`, else `~/.launcher`."""
    return Path(os.environ.get("LAUNCHER_HOME") or Path.home() / ".launcher")


class JobRegistry:
    """Submitted jobs, one JSON file each under `ROOT/jobs/`.

    Example: `JobRegistry().get("my-run").handle` -> `"slurm://4242"`.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.jobs_dir = self.root / "jobs"

    # -- writing -------------------------------------------------------------------------
    def record(self, job: Job, spec: LaunchSpec, mlflow_run_id: str | None = None) -> Path:
        """Save a newly submitted job (replacing any earlier record with the same handle)."""
        record = JobRecord(job, spec.to_dict(), mlflow_run_id)
        with self._locked():
            return self._write(record)

    def update(self, job: Job, mlflow_run_id: str | None = None) -> Path:
        """Replace the stored `Job` (e.g. new `extra` state), keeping its spec and MLflow run."""
        with self._locked():
            path = self._path(job.handle)
            record = self._read(path) if path.exists() else JobRecord(job)
            record.job = job
            if mlflow_run_id is not None:
                record.mlflow_run_id = mlflow_run_id
            return self._write(record)

    # -- reading -------------------------------------------------------------------------
    def records(self) -> list[JobRecord]:
        """Every record, newest submission first. Unreadable files are skipped."""
        found = []
        for path in self.jobs_dir.glob("*.json") if self.jobs_dir.is_dir() else ():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                found.append(self._read(path))
        return sorted(found, key=lambda r: r.job.submitted_at, reverse=True)

    def matches(self, ref: str) -> list[JobRecord]:
        """The records `ref` may mean: one when it names a job, several when it is ambiguous.

        Exact handle, native id or run name first; then a prefix of any of them. The jobs of
        one resumed run share its name: the newest stands for them all.
        """
        if not ref.strip():
            raise UserError("empty job reference; give a handle, a job id or a run name")
        records = self.records()
        for exact in (
            [r for r in records if r.job.handle == ref],
            [r for r in records if r.job.native_id == ref],
            [r for r in records if r.job.name == ref],
        ):
            if exact:
                return exact[:1]
        prefixed = [r for r in records if any(k.startswith(ref) for k in _keys(r.job))]
        if len({r.job.name for r in prefixed}) == 1 and all(r.job.name for r in prefixed):
            return prefixed[:1]  # several jobs of one (resumed) run: the newest
        return prefixed

    def list(self) -> list[Job]:
        """Every recorded job, newest first."""
        return [r.job for r in self.records()]

    def get(self, ref: str) -> Job:
        """The job `ref` names: a full handle, a native id, a run name, or a unique prefix."""
        return self.get_record(ref).job

    def get_record(self, ref: str) -> JobRecord:
        """Like `get`, returning the whole `JobRecord` (spec and MLflow run id too)."""
        found = self.matches(ref)
        if len(found) == 1:
            return found[0]
        if found:
            listed = ", ".join(f"{r.job.handle} ({r.job.name})" for r in found[:10])
            raise UserError(f"{ref!r} matches several jobs: {listed}. Give more of the name.")
        known = sorted({k for r in self.records() for k in _keys(r.job)})
        close = difflib.get_close_matches(ref, known, n=5, cutoff=0.5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise UserError(
            f"no job {ref!r} in the registry {self.jobs_dir}.{hint} "
            "Run `launch jobs` to list submitted jobs."
        )

    # -- files ---------------------------------------------------------------------------
    def _path(self, handle: str) -> Path:
        # `slurm://4242` -> `slurm--4242.json`; anything odd in the id becomes `_`.
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", handle.replace("://", "--"))
        return self.jobs_dir / f"{safe}.json"

    def _read(self, path: Path) -> JobRecord:
        record = JobRecord.from_dict(json.loads(path.read_text()))
        record.job.native_id  # noqa: B018 -- raises ValueError on a malformed handle
        return record

    def _write(self, record: JobRecord) -> Path:
        path = self._path(record.job.handle)
        text = json.dumps(record.to_dict(), indent=2, sort_keys=True, default=str)
        atomic_write_text(path, text)  # its temporary name is hidden from the `*.json` glob
        return path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.jobs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create the job registry at {self.jobs_dir} ({exc.strerror}); "
                "set LAUNCHER_HOME to a writable folder"
            ) from exc
        with open(self.jobs_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _keys(job: Job) -> tuple[str, ...]:
    return (job.handle, job.native_id, job.name)
