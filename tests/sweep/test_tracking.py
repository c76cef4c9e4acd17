"""The objective's order, and what a trial's own run records (pure parts of the MLflow side)."""

from __future__ import annotations

from launcher.sweep.record import SweepRecord, TrialRecord
from launcher.sweep.tracking import TrialResult, best_trial, sort_by_objective
from launcher.sweep.trial_info import trial_params, trial_tags


def _record(mode: str) -> SweepRecord:
    trials = [TrialRecord(i, f"s-{i}", f"/runs/s-{i}", {"lr": str(i)}) for i in range(4)]
    return SweepRecord("s", "/runs", "r.py", "e", "local", {}, trials, metric="m", mode=mode)


def test_trials_sort_best_first_by_mode_and_unscored_trials_go_last():
    results = [TrialResult(0, objective=0.5), TrialResult(1), TrialResult(2, objective=0.2),
               TrialResult(3, objective=0.9)]  # fmt: skip
    assert [r.index for r in sort_by_objective(_record("min"), results)] == [2, 0, 3, 1]
    assert [r.index for r in sort_by_objective(_record("max"), results)] == [3, 0, 2, 1]
    assert best_trial(_record("min"), results).index == 2
    assert best_trial(_record("max"), [TrialResult(0), TrialResult(1)]) is None


def test_a_trials_run_is_tagged_under_its_parent_with_the_swept_keys_as_params():
    sweep = {"name": "s", "trial": 3, "params": {"lr": "0.01", "data.batch_size": "64"},
             "parent_run_id": "abc"}  # fmt: skip
    assert trial_tags(sweep) == {"launcher.sweep": "s", "launcher.sweep_trial": "3",
                                 "mlflow.parentRunId": "abc"}  # fmt: skip
    assert trial_params(sweep) == {"sweep.lr": "0.01", "sweep.data.batch_size": "64"}
    assert trial_tags({}) == {} and trial_params({}) == {}  # a plain run: nothing added
