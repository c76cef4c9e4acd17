"""`launch jobs | status | logs | cancel`: ask about submitted jobs, whatever their backend.

launch jobs                         # table of recorded jobs, newest first
launch status mnist-20250101        # by handle, id, run name or unique prefix
launch logs slurm://4242 --follow --rank 1
launch cancel 4242
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Annotated

import typer

from backends.base import Backend, Job, JobState, Plan
from backends.registry import JobRegistry
from launcher.cli.options import DebugOption, JobArgument


def current_state(job: Job, registry: JobRegistry) -> JobState:
    """Ask the job's backend for its state; remember terminal states so we ask only once."""
    recorded = job.extra.get("state")
    if recorded and JobState(recorded).is_terminal():
        return JobState(recorded)
    state = _backend(job).status(job)
    if state.is_terminal():
        registry.update(dataclasses.replace(job, extra={**job.extra, "state": state.value}))
    return state


def _backend(job: Job) -> Backend[Plan]:
    from backends import get_backend  # imports the backend module (submitit, ray) lazily

    return get_backend(job.backend)


def jobs(
    limit: Annotated[int, typer.Option(help="Show at most this many jobs (0: all).")] = 20,
    debug: DebugOption = False,
) -> None:
    """List submitted jobs, newest first."""
    from rich.console import Console
    from rich.table import Table

    registry = JobRegistry()
    listed = registry.list()
    table = Table("handle", "name", "backend", "state", "submitted", "run dir")
    for job in listed[:limit] if limit else listed:
        try:
            state = current_state(job, registry).value
        except Exception as exc:  # one unreachable cluster must not hide the other jobs
            state = f"{JobState.UNKNOWN.value} ({type(exc).__name__})"
        submitted = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.submitted_at))
        table.add_row(job.handle, job.name, job.backend, state, submitted, job.run_dir)
    if not listed:
        typer.echo("no jobs yet; start one with: launch RECIPE.py")
        return
    # Piped output (no terminal) gets a wide table rather than rich's 80-column default.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def status(job: JobArgument, debug: DebugOption = False) -> None:
    """Print a job's state (PENDING, RUNNING, SUCCEEDED, FAILED, ...)."""
    registry = JobRegistry()
    found = registry.get(job)
    typer.echo(f"{found.handle}  {current_state(found, registry).value}  {found.name}")
    typer.echo(f"run dir: {found.run_dir}")


def logs(
    job: JobArgument,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until it ends.")
    ] = False,
    rank: Annotated[
        int | None, typer.Option(help="Whose logs: a global rank (default: 0).")
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Print a job's logs (rank 0 unless --rank)."""
    found = JobRegistry().get(job)
    for line in _backend(found).logs(found, rank=rank, follow=follow):
        typer.echo(line, nl=False)


def cancel(job: JobArgument, debug: DebugOption = False) -> None:
    """Cancel a pending or running job."""
    found = JobRegistry().get(job)
    _backend(found).cancel(found)
    typer.echo(f"cancelled {found.handle} ({found.name})")


def register(app: typer.Typer) -> None:
    """Add `jobs`, `status`, `logs` and `cancel` to `app`."""
    for command in (jobs, status, logs, cancel):
        app.command(command.__name__)(command)
