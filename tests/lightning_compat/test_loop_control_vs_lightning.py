"""When `fit` validates and stops, under Lightning and under launcher (recipes/val_schedule.py).

python -m pytest tests/lightning_compat/test_loop_control_vs_lightning.py -x -q

Each case runs the same recipe in both runtimes and compares how many validations ran, at which
epoch/global step/batch, that the model trained again in train mode after each, when the
train epochs ended and EarlyStopping acted, which checkpoints ModelCheckpoint wrote (their
names carry epoch and step) and where the run ended.
"""

from __future__ import annotations

import pytest

from tests.lightning_compat.harness import run_recipe

pytestmark = pytest.mark.slow

CASES = ["quarter", "int3", "across_epochs", "every_2nd_epoch", "fraction_0.3", "limited",
         "min_epochs", "min_steps", "stop_mid_epoch", "max_epochs_0", "unlimited_epochs",
         "overfit"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_validation_schedule_and_stops_match_lightning(case, lightning_python, tmp_path):
    lightning = run_recipe("lightning", "val_schedule.py", tmp_path / "pl", case,
                           python=lightning_python)  # fmt: skip
    ours = run_recipe("launcher", "val_schedule.py", tmp_path / "ours", case)
    # Validation metrics are logged at Lightning's step (`_batches_that_stepped`, which
    # lags the step the validation followed by one), with the epoch.
    assert ours == lightning


def test_the_recorded_schedules_are_lightnings_documented_ones(tmp_path):
    """Pins what the comparison above compares, so it cannot pass on two empty reports."""
    reports = {
        case: run_recipe("launcher", "val_schedule.py", tmp_path / case, case)
        for case in ("quarter", "int3", "across_epochs", "stop_mid_epoch")
    }
    steps = {case: [v[1] for v in r["validations"]] for case, r in reports.items()}
    # 10 batches per epoch: 0.25 -> every int(10 * 0.25) = 2 batches, 5 per epoch.
    assert steps["quarter"] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    # An int counts batches within each epoch (the 10th batch is not a multiple of 3).
    assert steps["int3"] == [3, 6, 9, 13, 16, 19]
    # check_val_every_n_epoch=None: every 4 batches across epochs.
    assert steps["across_epochs"] == [4, 8, 12, 16, 20, 24, 28]
    # should_stop at step 7 validates once more, then ends the epoch (its hooks run).
    assert steps["stop_mid_epoch"] == [5, 7]
    assert reports["stop_mid_epoch"]["final"] == [1, 7, 3]
    assert all(all(r["train_mode_after_val"]) for r in reports.values())
