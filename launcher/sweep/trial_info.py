"""What a sweep trial's MLflow run records on top of a plain run's: its parent and its point.

    spec.sweep = {"name": "digits-sweep", "trial": 3, "params": {"lr": "0.01"},
                  "parent_run_id": "3f2a..."}
    trial_tags(spec.sweep)     # {"mlflow.parentRunId": "3f2a...", "launcher.sweep": ..., ...}
    trial_params(spec.sweep)   # {"sweep.lr": "0.01"}: MLflow's parallel-coordinates axes

Read by the worker's run record (`launcher.train.run_record`) from the launch settings; a
plain run has no `sweep` and gets nothing from here.
"""

from __future__ import annotations

from typing import Any

SWEEP_TAG = "launcher.sweep"
TRIAL_TAG = "launcher.sweep_trial"
PARENT_TAG = "mlflow.parentRunId"  # MLflow nests a run under the run this names
PARAM_PREFIX = "sweep."


def trial_tags(sweep: dict[str, Any] | None) -> dict[str, str]:
    """The tags of a trial's run: its sweep, its number, its parent run (when one exists)."""
    if not sweep:
        return {}
    tags = {SWEEP_TAG: str(sweep["name"]), TRIAL_TAG: str(sweep["trial"])}
    if sweep.get("parent_run_id"):
        tags[PARENT_TAG] = str(sweep["parent_run_id"])
    return tags


def trial_params(sweep: dict[str, Any] | None) -> dict[str, str]:
    """The swept keys as params, `sweep.KEY` (never clashing with the Module's own hparams)."""
    if not sweep:
        return {}
    return {f"{PARAM_PREFIX}{key}": str(value) for key, value in sweep["params"].items()}
