"""One identity for jobs and runs, and one set of state words, across every command.

    record = find_job("3f2a9c1d")              # a run name, an MLflow run id (or prefix), a handle
    aliases = job_aliases(["slurm://42", "mnist-lr0.1"])   # {"slurm://42": "mnist-lr0.01"}
    run_state("FINISHED")                      # JobState.SUCCEEDED, as `launch jobs` says it

The registry (`backends.registry`) knows handles, native ids and run names; MLflow knows run
ids. A reference the registry does not know, and that looks like a run id, is looked up in
the MLflow stores the recorded jobs used, then mapped back to its job by run name. Only that
fallback imports mlflow, so `launch status NAME` stays light.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from backends.base import JobState
from backends.registry import JobRecord, JobRegistry
from launcher.errors import UserError
from launcher.tracking.tags import LOST_STATE

# MLflow's RunStatus words onto the job states `launch jobs` prints.
MLFLOW_STATES = {
    "SCHEDULED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "FINISHED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "KILLED": JobState.CANCELLED,
}
_RUN_ID_PREFIX = re.compile(r"[0-9a-f]{4,32}")


# ... and back: how a run whose job ended without it ending the run is ended in MLflow.
JOB_END_STATUS = {
    JobState.CANCELLED: "KILLED",
    JobState.FAILED: "FAILED",
    JobState.TIMEOUT: "FAILED",
    JobState.LOST: "FAILED",
}


def run_state(mlflow_status: str, state_tag: str | None = None) -> JobState:
    """The `JobState` word for an MLflow run status (`UNKNOWN` for anything else); a FAILED
    run tagged `launcher.state=lost` (its processes died without a word) is `LOST`."""
    if mlflow_status == "FAILED" and state_tag == LOST_STATE:
        return JobState.LOST
    return MLFLOW_STATES.get(mlflow_status, JobState.UNKNOWN)


def find_job(ref: str, registry: JobRegistry) -> JobRecord:
    """The recorded job `ref` names: a handle, a native id, a run name, or an MLflow run id.

    Each may be a unique prefix; an ambiguous one is a `UserError` listing the candidates.
    """
    found = registry.matches(ref)
    if not found and _RUN_ID_PREFIX.fullmatch(ref):
        found = _jobs_of_run_id(ref, registry)
    if len(found) == 1:
        return found[0]
    return registry.get_record(ref)  # raises, listing the candidates or close matches


def _jobs_of_run_id(prefix: str, registry: JobRegistry) -> list[JobRecord]:
    from launcher.tracking.reader import runs_with_id_prefix

    records = registry.records()
    runs: dict[str, str] = {}
    for uri in sorted({store_of(r) for r in records}):
        try:
            runs.update(runs_with_id_prefix(uri, prefix))
        except UserError:  # a store that is gone or unreachable knows no run
            continue
    if len(runs) > 1:
        listed = ", ".join(f"{run_id} ({name})" for run_id, name in sorted(runs.items()))
        raise UserError(f"run id {prefix!r} is ambiguous: it may be {listed}. Give more of it.")
    names = set(runs.values())
    by_name = [r for r in records if r.job.name in names]
    if runs and not by_name:
        run_id, name = next(iter(runs.items()))
        raise UserError(
            f"run {run_id} ({name}) has no recorded job here (it was not started by this "
            "user's `launch`); `launch runs` and `launch compare` show it"
        )
    return by_name[:1]  # newest first: the latest job of the run


def store_of(record: JobRecord) -> str:
    """The MLflow store a recorded job's run went to (the worker's own rule)."""
    from launcher.tracking.reader import resolve_tracking_uri

    output_dir = str(Path(record.job.run_dir).parent.parent)  # RUN_DIR = OUTPUT/EXPERIMENT/NAME
    return resolve_tracking_uri(record.spec.get("tracking_uri"), output_dir)


def job_aliases(refs: Iterable[str], registry: JobRegistry) -> dict[str, str]:
    """`{ref: run name}` for each ref that names exactly one recorded job (for `compare`)."""
    aliases = {}
    for ref in refs:
        if not ref.strip():
            continue
        found = registry.matches(ref)
        if len(found) == 1 and found[0].job.name:
            aliases[ref] = found[0].job.name
    return aliases
