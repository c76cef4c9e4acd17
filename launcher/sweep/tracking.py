"""A sweep in MLflow: one parent run holding the definition and the best trial so far.

    parent = open_parent(record, definition_yaml)    # created once; a resume reopens it
    trials = trial_results(record)                   # each trial's run: state, step, objective
    update_best(record, trials)                      # best_<metric>, best_trial on the parent
    close_parent(record, "FINISHED")

Each trial's own run is a plain run (its worker's logger) with `mlflow.parentRunId` set to the
parent (`trial_info.trial_tags`), so it continues across requeues exactly as a single run does.
The parent is written only by the `launch sweep` process; the trials never touch it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.sweep.record import SweepRecord
from launcher.sweep.trial_info import SWEEP_TAG

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PARENT_ROLE_TAG = "launcher.sweep_role"
BEST_TRIAL_TAG = "launcher.best_trial"
_TRAINING_KIND = {"mlflow.experimentKind": "custom_model_development"}  # as the logger's


@dataclass
class TrialResult:
    """A trial as MLflow holds it (None everywhere: its run does not exist yet)."""

    index: int
    run_id: str | None = None
    status: str | None = None  # MLflow's RunStatus word
    state_tag: str | None = None
    step: int | None = None  # the newest step any of its metrics reached
    objective: float | None = None  # the metric's final value
    metrics: tuple[str, ...] = ()  # the keys its run logged (to name a misspelled --metric)


def open_parent(record: SweepRecord, definition: str) -> str:
    """The parent run's id: created (with the definition as `sweep.yaml`) on the first call,
    set back to RUNNING on a resume."""
    from launcher.tracking.local_store import prepare_local_store
    from launcher.tracking.reader import local_artifact_root, open_client

    uri = record.tracking_uri or ""
    prepare_local_store(uri)
    with open_client(uri) as client:
        if record.parent_run_id:
            client.update_run(record.parent_run_id, status="RUNNING")
            return record.parent_run_id
        found = client.get_experiment_by_name(record.experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(
            record.experiment, artifact_location=local_artifact_root(uri), tags=_TRAINING_KIND
        )  # fmt: skip
        run = client.create_run(
            experiment_id,
            run_name=record.name,
            tags={
                SWEEP_TAG: record.name,
                PARENT_ROLE_TAG: "parent",
                "mlflow.note.content": f"`{record.command}`",
            },  # fmt: skip
        )
        run_id = run.info.run_id
        client.log_param(run_id, "sweep.trials", str(len(record.trials)))
        if record.metric:
            client.log_param(run_id, "sweep.metric", f"{record.metric} ({record.mode})")
        definition_file = Path(record.sweep_dir) / "sweep.yaml"
        definition_file.write_text(definition)
        client.log_artifact(run_id, str(definition_file))
        return run_id


def trial_results(record: SweepRecord) -> list[TrialResult]:
    """Every trial's run state, newest step and objective, read from the store."""
    from launcher.tracking.reader import open_client

    uri = record.tracking_uri or ""
    results = [TrialResult(t.index) for t in record.trials]
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        return results
    with open_client(uri) as client:
        found = client.get_experiment_by_name(record.experiment)
        if found is None:
            return results
        runs = client.search_runs([found.experiment_id], f"tags.`{SWEEP_TAG}` = '{record.name}'")
        by_name = {r.info.run_name: r for r in runs if r.info.run_id != record.parent_run_id}
        for trial, result in zip(record.trials, results, strict=True):
            run = by_name.get(trial.name)
            if run is None:
                continue
            result.run_id, result.status = run.info.run_id, run.info.status
            result.state_tag = run.data.tags.get("launcher.state")
            result.step = _newest_step(client, run.info.run_id, list(run.data.metrics))
            result.metrics = tuple(
                sorted(k for k in run.data.metrics if not k.startswith("system/"))
            )
            if record.metric and record.metric in run.data.metrics:
                result.objective = float(run.data.metrics[record.metric])
    return results


def _newest_step(client: MlflowClient, run_id: str, keys: list[str]) -> int | None:
    steps = [m.step for key in keys if not key.startswith("system/")
             for m in client.get_metric_history(run_id, key)[-1:]]  # fmt: skip
    return max(steps) if steps else None


def best_trial(record: SweepRecord, results: list[TrialResult]) -> TrialResult | None:
    """The trial with the best objective (`record.mode`), None when no trial has one."""
    scored = [r for r in results if r.objective is not None]
    if not scored:
        return None
    pick = max if record.mode == "max" else min
    return pick(scored, key=lambda r: r.objective or 0.0)


def sort_by_objective(record: SweepRecord, results: list[TrialResult]) -> list[TrialResult]:
    """Best first; trials without an objective last, by number."""
    sign = -1.0 if record.mode == "max" else 1.0
    return sorted(
        results, key=lambda r: (r.objective is None, sign * (r.objective or 0.0), r.index)
    )


def update_best(record: SweepRecord, results: list[TrialResult], step: int) -> None:
    """Log the best objective so far (`best_<metric>` at `step`: trials ended) and its trial."""
    best = best_trial(record, results)
    if best is None or not record.parent_run_id or best.objective is None:
        return
    from launcher.tracking.reader import open_client

    with open_client(record.tracking_uri or "") as client:
        client.log_metric(record.parent_run_id, f"best_{record.metric}", best.objective, step=step)
        client.set_tag(record.parent_run_id, BEST_TRIAL_TAG, str(best.index))
        client.set_tag(record.parent_run_id, "launcher.best_run_id", best.run_id or "")


def close_parent(record: SweepRecord, status: str) -> None:
    """End the parent run (`FINISHED`, `FAILED`, `KILLED`)."""
    if not record.parent_run_id:
        return
    from launcher.tracking.reader import open_client

    with open_client(record.tracking_uri or "") as client:
        client.set_terminated(record.parent_run_id, status, end_time=int(time.time() * 1000))


def definition_yaml(definition: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(definition, sort_keys=False)
