"""Ending a run its own processes could not end: cancelled, lost, or its job gone.

    end_open_run(uri, "digits", "digits-1", "KILLED", "cancelled", "cancelled with launch cancel")
    mark_if_lost(client, run)        # RUNNING, heartbeat silent for STALE_S -> FAILED, "lost"

A run ends itself when its trainer can (FINISHED, FAILED, KILLED on a user's stop). When its
processes were killed outright (scancel's SIGKILL, Ray's stop_job, a SIGKILL, a lost node),
the command that learns of it ends the run instead: `launch cancel`, `launch jobs`/`status`
(a job found ended) and `launch runs` (a heartbeat gone silent). Only RUNNING runs are
touched, so a run that did end itself keeps its own word. A resume flips the same run back to
RUNNING (the logger's `open`) and its `launcher.state` tag back to "running".

A lost run is marked FAILED, not KILLED: MLflow's KILLED means someone stopped the run on
purpose (as `mlflow run` does on Ctrl-C); a run that died unexpectedly is a failure, the
status people filter on, and the `launcher.state` tag "lost" says which kind.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from launcher.common.heartbeat import heartbeat_age, is_lost
from launcher.tracking.tags import END_REASON_TAG, LOST_STATE, RUN_DIR_TAG, STATE_TAG

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient


def end_run(client: MlflowClient, run: Run, status: str, state: str, reason: str) -> None:
    """End `run` with MLflow `status`, its state tag and the reason, if it is still RUNNING."""
    if run.info.status != "RUNNING":
        return
    run_id = run.info.run_id
    client.set_tag(run_id, STATE_TAG, state)
    client.set_tag(run_id, END_REASON_TAG, reason)
    client.set_terminated(run_id, status, end_time=int(time.time() * 1000))


def end_open_run(
    tracking_uri: str, experiment: str, run_name: str, status: str, state: str, reason: str
) -> list[str]:
    """End the RUNNING runs named `run_name` in `experiment`; returns their ids."""
    from launcher.tracking.reader import open_client

    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[10:]).exists():
        return []  # the job never got as far as creating its run
    with open_client(tracking_uri) as client:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = client.search_runs(
            [found.experiment_id],
            f"attributes.run_name = '{run_name}' and attributes.status = 'RUNNING'",
        )
        for run in runs:
            end_run(client, run, status, state, reason)
        return [run.info.run_id for run in runs]


def mark_if_lost(client: MlflowClient, run: Run) -> bool:
    """Mark a RUNNING run whose heartbeat went silent FAILED + "lost"; True if it did."""
    run_dir = run.data.tags.get(RUN_DIR_TAG)
    if run.info.status != "RUNNING" or not is_lost(run_dir):
        return False
    age = heartbeat_age(run_dir or "") or 0.0
    reason = (f"lost: its processes stopped without a word {age:.0f} s ago (killed, out of "
              f"memory, or its node lost); resume with: launch resume {run.info.run_name}")  # fmt: skip
    end_run(client, run, "FAILED", LOST_STATE, reason)
    return True
