"""CSVLogger: long-format rows, hparams.json, and no duplicated steps after a resume.

python -m pytest tests/loggers/test_csv.py -x -q
"""

from __future__ import annotations

import csv
import json

import pytest

from launcher.loggers import CSVLogger


def rows(path) -> list[tuple[int, str, float]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["step", "key", "value"]
        return [(int(s), k, float(v)) for s, k, v in reader]


def test_metrics_and_hparams_are_written(tmp_path):
    logger = CSVLogger(str(tmp_path), name="m")
    logger.log_hyperparams({"lr": 0.1, "model": {"width": 64}})
    logger.log_hyperparams({"seed": 3})
    logger.log_metrics({"train/loss": 0.5}, step=0)
    logger.log_metrics({"train/loss": 0.25, "val/acc": 0.9}, step=1)  # a new key mid-run
    logger.finalize("FINISHED")

    assert rows(tmp_path / "m.csv") == [
        (0, "train/loss", 0.5),
        (1, "train/loss", 0.25),
        (1, "val/acc", 0.9),
    ]
    assert json.loads((tmp_path / "hparams.json").read_text()) == {
        "lr": 0.1,
        "model": {"width": 64},
        "seed": 3,
    }


def test_resume_truncates_rows_after_the_checkpoint(tmp_path):
    first = CSVLogger(str(tmp_path))
    for step in range(10):
        first.log_metrics({"loss": float(step)}, step=step)
        if step == 5:
            state = first.state_dict()  # taken when the checkpoint is written
    first.flush()
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("10,loss,1")  # a row torn by the crash
    assert state == {"last_step": 5}

    resumed = CSVLogger(str(tmp_path))
    resumed.load_state_dict(state)
    for step in range(6, 12):  # replays 6..9, then goes on
        resumed.log_metrics({"loss": float(step)}, step=step)
    resumed.finalize("FINISHED")
    assert rows(tmp_path / "metrics.csv") == [(s, "loss", float(s)) for s in range(12)]


def test_fresh_run_starts_a_new_file_and_state_keys_are_checked(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,key,value\n99,old,1.0\n")
    logger = CSVLogger(str(tmp_path))
    with pytest.raises(ValueError, match="last_step"):
        logger.load_state_dict({"step": 3})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("FINISHED")
    assert rows(tmp_path / "metrics.csv") == [(0, "loss", 1.0)]
