"""`launch jobs | status | logs | cancel`: ask about submitted jobs, whatever their backend.

launch jobs                         # one line per recorded job, newest first; --json
launch status mnist-20250101        # by run name, MLflow run id, handle, id or unique prefix
launch logs slurm://4242 --follow --rank 1
launch cancel 4242
"""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any

import typer

from backends.base import Backend, Job, JobState, Plan
from backends.registry import JobRecord, JobRegistry
from launcher.cli.identity import JOB_END_STATUS, find_job, store_of
from launcher.cli.options import DebugOption, JobArgument, JsonOption, LauncherCommand
from launcher.cli.output import Column, print_json, print_rows
from launcher.common.heartbeat import is_lost
from launcher.errors import UserError
from launcher.tracking.tags import LOST_STATE

CANCEL_WAIT_S = 90.0  # scancel's SIGKILL comes 30 s (KillWait) after its SIGTERM


def current_state(job: Job, registry: JobRegistry) -> JobState:
    """Ask the job's backend for its state; remember terminal states so we ask only once.

    A job of a backend that cannot see its processes (local) seen RUNNING whose heartbeat went
    silent is `LOST`. A job found ended gets its MLflow run ended too, if the run could not end
    itself (`end_job_run`).
    """
    recorded = job.extra.get("state")
    if recorded and JobState(recorded).is_terminal():
        return JobState(recorded)
    backend = _backend(job)
    state = backend.status(job)
    if state == JobState.RUNNING and not backend.tracks_processes and is_lost(job.run_dir):
        state = JobState.LOST
    if state.is_terminal():
        registry.update(dataclasses.replace(job, extra={**job.extra, "state": state.value}))
        end_job_run(registry.get_record(job.handle), state)
    return state


def end_job_run(record: JobRecord, state: JobState) -> None:
    """End the job's MLflow run as its job ended (CANCELLED -> KILLED, FAILED/LOST -> FAILED)
    when the run is still RUNNING: its processes were killed before they could say so."""
    status = JOB_END_STATUS.get(state)
    if status is None:
        return
    from launcher.tracking.run_end import end_open_run

    name, experiment = record.job.name, record.spec.get("experiment")
    if not experiment:
        return
    if state == JobState.LOST:
        tag, why = LOST_STATE, "lost: its processes stopped without a word"
    else:
        tag = status.lower()
        why = "cancelled" if state == JobState.CANCELLED else f"its job ended {state.value}"
    reason = f"{why} ({record.job.handle}); resume with: launch resume {name}"
    try:
        end_open_run(store_of(record), experiment, name, status, tag, reason)
    except Exception as exc:  # noqa: BLE001 - a store that is down must not hide the job's state
        typer.echo(f"{record.job.handle}: its MLflow run was not marked {status}: {exc}", err=True)


def _backend(job: Job) -> Backend[Plan]:
    from backends import get_backend  # imports the backend module (submitit, ray) lazily

    return get_backend(job.backend)


JOB_COLUMNS = (
    Column("handle", keep=True),
    Column("state"),
    Column("name", keep=True, drop=1),  # last to go: a local job's handle holds its name
    Column("run dir", drop=3, shrink=True, min_width=20),
    Column("submitted", drop=4),
    Column("backend", drop=5),  # the handle says it too
)


def _job_row(record: JobRecord, registry: JobRegistry) -> dict[str, Any]:
    """What `jobs`/`status` say about one job; `--json` prints it as is."""
    job = record.job
    error: str | None = None
    try:
        state = current_state(job, registry).value
    except UserError as exc:  # one unreachable cluster must not hide the other jobs
        state, error = JobState.UNKNOWN.value, str(exc)
    except Exception as exc:
        state, error = JobState.UNKNOWN.value, f"{type(exc).__name__}: {exc}"
    return {
        "handle": job.handle,
        "id": job.native_id,
        "name": job.name,
        "backend": job.backend,
        "state": state,
        "error": error,
        "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(job.submitted_at)),
        "run_dir": job.run_dir,
        "recipe": job.recipe,
        "mlflow_run_id": record.mlflow_run_id,
    }


def _print_jobs(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    text_rows = [
        {
            "handle": row["handle"],
            "state": _state_text(row),
            "name": row["name"],
            "run dir": row["run_dir"],
            "submitted": row["submitted_at"][:16].replace("T", " "),
            "backend": row["backend"],
        }
        for row in rows
    ]
    print_rows(JOB_COLUMNS, text_rows)
    for row in rows:
        if row["error"]:
            typer.echo(f"{row['handle']}: state unknown: {row['error']}", err=True)


def _state_text(row: dict[str, Any]) -> str:
    """The state, why it is unknown, and a sweep's trials by state: "RUNNING (trials: 2
    SUCCEEDED, 1 RUNNING, 1 PENDING)"."""
    text = row["state"] + (f" ({_error_kind(row['error'])})" if row["error"] else "")
    counts = row.get("trials")
    if counts is not None:
        text += " (trials: " + ", ".join(f"{n} {state}" for state, n in counts.items()) + ")"
    return text


def _error_kind(error: str) -> str:
    # "ConnectionError: refused" -> "ConnectionError"; a UserError's text is kept short.
    head = error.split(":", 1)[0]
    return head if head.isidentifier() else "unreachable"


def jobs(
    limit: Annotated[int, typer.Option(metavar="N", help="Show at most N jobs (0: all).")] = 20,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """List submitted jobs, newest first: one line each (--json for scripts)."""
    from launcher.cli.sweep import SweepIndex, sweep_row
    from launcher.sweep.record import SweepRecord

    registry = JobRegistry()
    # A sweep is one line (its trials counted by state), not one line per trial.
    sweeps = SweepIndex(registry.root).records()
    entries: list[tuple[float, JobRecord | SweepRecord]] = [
        *((r.job.submitted_at, r) for r in registry.records() if not r.spec.get("sweep")),
        *((s.submitted_at, s) for s in sweeps),
    ]
    if not entries and not as_json:
        typer.echo("no jobs yet; start one with: launch RECIPE.py")
        return
    entries.sort(key=lambda entry: entry[0], reverse=True)
    shown = entries[:limit] if limit else entries
    rows = [_job_row(item, registry) if isinstance(item, JobRecord) else sweep_row(item, registry)
            for _, item in shown]  # fmt: skip
    _print_jobs(rows, as_json)


def status(
    job: Annotated[
        list[str],
        typer.Argument(
            metavar="JOB...",
            help="Jobs: a run name, an MLflow run id, a handle (slurm://4242), or a unique prefix.",
        ),
    ],
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Print jobs' states (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, ...).

    A sweep: every trial, with its params, state, newest step and objective."""
    from launcher.cli.sweep import find_sweep, print_sweep_status

    registry = JobRegistry()
    sweeps = {ref: found for ref in job if (found := find_sweep(ref, registry)) is not None}
    plain = [ref for ref in job if ref not in sweeps]
    if plain or not sweeps:
        _print_jobs([_job_row(find_job(ref, registry), registry) for ref in plain], as_json)
    for record in sweeps.values():
        print_sweep_status(record, registry, as_json)


def logs(
    job: JobArgument,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until it ends.")
    ] = False,
    rank: Annotated[
        int | None, typer.Option(metavar="N", help="Whose logs: a global rank (default: 0).")
    ] = None,
    trial: Annotated[
        int | None, typer.Option(metavar="N", help="A sweep's trial N (see launch status SWEEP).")
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Print a job's logs (rank 0 unless --rank); a sweep's: its trial's (--trial N)."""
    from launcher.cli.sweep import find_sweep, sweep_logs

    registry = JobRegistry()
    if (sweep := find_sweep(job, registry)) is not None:
        job = sweep_logs(sweep, trial, registry).name
    elif trial is not None:
        raise UserError(f"--trial {trial}: {job} is not a sweep; drop --trial")
    found = find_job(job, registry).job
    for line in _backend(found).logs(found, rank=rank, follow=follow):
        typer.echo(line, nl=False)


def cancel(job: JobArgument, debug: DebugOption = False) -> None:
    """Cancel a pending or running job (one that already ended is left as it is, exit 0).

    A sweep: every running trial stops (checkpointed, KILLED) and no other starts."""
    from launcher.cli.sweep import cancel_sweep, find_sweep

    registry = JobRegistry()
    if (sweep := find_sweep(job, registry)) is not None:
        cancel_sweep(sweep, registry)
        return
    found = find_job(job, registry).job
    state = current_state(found, registry)
    if state.is_terminal():  # what the user wanted holds already: say so, no error
        typer.echo(
            f"{found.handle} ({found.name}) had already ended: {state.value}; nothing to cancel"
        )
        return
    _backend(found).cancel(found)
    # Its processes may be killed before they can end the run: once the job is gone,
    # `current_state` ends it KILLED (a job still ending is caught by a later `launch jobs`).
    deadline = time.monotonic() + CANCEL_WAIT_S
    while not (state := current_state(registry.get(found.handle), registry)).is_terminal():
        if time.monotonic() > deadline:
            typer.echo(f"cancel sent to {found.handle} ({found.name}); it is still {state.value}")
            return
        time.sleep(1.0)
    typer.echo(f"cancelled {found.handle} ({found.name}): {state.value}")


def register(app: typer.Typer) -> None:
    """Add `jobs`, `status`, `logs` and `cancel` to `app`."""
    for command in (jobs, status, logs, cancel):
        app.command(command.__name__, cls=LauncherCommand)(command)
