"""Lightning's CSV, TensorBoard and MLflow loggers against ours, through the same API calls.

python -m pytest tests/lightning_compat/test_loggers_vs_lightning.py -x -q

recipes/loggers_api.py drives each logger (hparams, metrics appearing mid-run, a prefix, save,
finalize("success"), a second stage); both runtimes must leave the same files behind.
"""

from __future__ import annotations

import pytest

from tests.lightning_compat.harness import run_recipe


@pytest.fixture(scope="module")
def reports(lightning_python, tmp_path_factory):
    root = tmp_path_factory.mktemp("loggers")
    lightning = run_recipe("lightning", "loggers_api.py", root / "pl", python=lightning_python)
    ours = run_recipe("launcher", "loggers_api.py", root / "ours")
    return lightning, ours


def test_csv_logger_writes_what_lightnings_writes(reports):
    lightning, ours = (r["csv"] for r in reports)
    assert ours == lightning  # layout, versions, header, rows, hparams.yaml byte for byte
    assert ours["files"] == [
        "named/hparams.yaml",
        "named/metrics.csv",
        "version_0/hparams.yaml",
        "version_0/metrics.csv",
    ]
    assert ours["lines"][0] == "epoch,lr,step,test_acc,train_loss,val_acc,val_loss"
    assert ours["lines"][-1] == ",,3,0.875,,,"  # the second stage's row, after the first's
    assert ours["versions"] == [0, "named", 1]


def test_tensorboard_logger_records_what_lightnings_records(reports):
    lightning, ours = (r["tensorboard"] for r in reports)
    assert ours == lightning
    assert ours["log_dir"] == "logs/tb/version_0/sub"
    assert ours["scalars"]["p-train_loss"] == [[0, 0.5], [1, 0.25], [2, 0.125]]


def test_mlflow_logger_stores_what_lightnings_stores(reports):
    lightning, ours = (r["mlflow"] for r in reports)
    assert ours == lightning
    assert ours["status"] == "FINISHED"
    assert ours["metrics"]["fold1-test_acc"] == [[3, 0.875]]  # logged after the first finalize
