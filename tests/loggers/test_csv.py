"""CSVLogger: Lightning's layout and wide CSV, hparams.yaml, and no duplicated rows after a resume.

python -m pytest tests/loggers/test_csv.py -x -q
"""

from __future__ import annotations

import csv
from argparse import Namespace
from pathlib import Path

import pytest
import yaml

from launcher.loggers import CSVLogger


def table(path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def losses(path) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r["loss"])) for r in table(path)[1]]


def test_metrics_and_hparams_are_written_in_lightnings_layout(tmp_path):
    logger = CSVLogger(tmp_path, name="m")
    assert (logger.name, logger.version, logger.save_dir) == ("m", 0, str(tmp_path))
    assert logger.root_dir == str(tmp_path / "m")
    assert logger.log_dir == str(tmp_path / "m" / "version_0")
    logger.log_hyperparams({"lr": 0.1, "model": {"width": 64}})
    logger.log_hyperparams(Namespace(seed=3))  # merged, and a Namespace as Lightning takes
    logger.log_metrics({"train/loss": 0.5}, step=0)
    logger.log_metrics({"train/loss": 0.25, "val/acc": 0.9}, step=1)  # a new key mid-run
    logger.log_metrics({"epoch": 0}, step=1)  # one row per call, as Lightning writes them
    logger.finalize("success")

    header, rows = table(tmp_path / "m" / "version_0" / "metrics.csv")
    assert header == ["epoch", "step", "train/loss", "val/acc"]
    assert rows == [
        {"epoch": "", "step": "0", "train/loss": "0.5", "val/acc": ""},
        {"epoch": "", "step": "1", "train/loss": "0.25", "val/acc": "0.9"},
        {"epoch": "0", "step": "1", "train/loss": "", "val/acc": ""},
    ]
    hparams = yaml.safe_load((tmp_path / "m" / "version_0" / "hparams.yaml").read_text())
    assert hparams == {"lr": 0.1, "model": {"width": 64}, "seed": 3}


def test_versions_increment_and_may_be_named(tmp_path):
    for expected in range(3):
        logger = CSVLogger(tmp_path)
        logger.log_metrics({"loss": 1.0}, step=0)
        logger.finalize("success")
        assert logger.log_dir == str(tmp_path / "lightning_logs" / f"version_{expected}")
    (tmp_path / "lightning_logs" / "version_x").mkdir()  # not a number: not counted
    assert CSVLogger(tmp_path).version == 3
    named = CSVLogger(tmp_path, name=None, version="run-a")
    named.log_metrics({"loss": 2.0}, step=0)
    named.save()
    assert losses(tmp_path / "run-a" / "metrics.csv") == [(0, 2.0)]
    assert CSVLogger(tmp_path, version=7).log_dir == str(tmp_path / "lightning_logs" / "version_7")


def test_rows_reach_the_file_every_n_steps_with_the_prefix(tmp_path):
    logger = CSVLogger(tmp_path, prefix="fold1", flush_logs_every_n_steps=2)
    logger.log_metrics({"loss": 1.0}, step=0)
    path = tmp_path / "lightning_logs" / "version_0" / "metrics.csv"
    assert not path.exists()  # buffered, as Lightning's
    logger.log_metrics({"loss": 2.0}, step=1)  # (step + 1) % 2 == 0: written
    assert table(path) == (
        ["fold1-loss", "step"],
        [{"fold1-loss": "1.0", "step": "0"}, {"fold1-loss": "2.0", "step": "1"}],
    )
    assert logger.experiment.metrics_file_path == str(path)


def test_a_second_stage_appends_to_the_first_stages_file(tmp_path):
    # The reported bug: trainer.test() after fit truncated the file, the training rows were gone.
    logger = CSVLogger(tmp_path)
    for step in range(3):
        logger.log_metrics({"train_loss": 1.0 + step}, step=step)
    logger.finalize("success")  # fit ends
    logger.log_hyperparams({"stage": "test"})
    logger.log_metrics({"test_loss": 5.0}, step=3)  # trainer.test() on the same logger
    logger.finalize("success")
    header, rows = table(tmp_path / "lightning_logs" / "version_0" / "metrics.csv")
    assert header == ["step", "test_loss", "train_loss"]
    assert [(r["step"], r["train_loss"], r["test_loss"]) for r in rows] == [
        ("0", "1.0", ""),
        ("1", "2.0", ""),
        ("2", "3.0", ""),
        ("3", "", "5.0"),
    ]


def test_resume_keeps_the_checkpointed_rows_and_version(tmp_path):
    first = CSVLogger(tmp_path)
    for step in range(10):
        first.log_metrics({"loss": float(step)}, step=step)
        if step == 5:
            state = first.state_dict()  # taken when the checkpoint is written
    first.log_metrics({"late": 1.0}, step=9)  # a column only after the checkpoint
    first.save()
    path = tmp_path / "lightning_logs" / "version_0" / "metrics.csv"
    with open(path, "a") as f:
        f.write("10,1")  # a row torn by the crash
    assert state == {"version": 0, "rows": 6, "last_step": 5}

    resumed = CSVLogger(tmp_path)  # would be version_1 on its own
    resumed.load_state_dict(state)
    assert resumed.log_dir == str(tmp_path / "lightning_logs" / "version_0")
    for step in range(6, 12):  # replays 6..9, then goes on
        resumed.log_metrics({"loss": float(step)}, step=step)
    resumed.finalize("success")
    assert table(path)[0] == ["loss", "step"]  # the column the crash left is gone with its row
    assert losses(path) == [(s, float(s)) for s in range(12)]


def test_fresh_run_replaces_the_file_and_state_keys_are_checked(tmp_path):
    folder = tmp_path / "lightning_logs" / "version_0"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("old,step\n1.0,99\n")
    logger = CSVLogger(tmp_path, version=0)
    with pytest.raises(ValueError, match="last_step"):
        logger.load_state_dict({"step": 3})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("FINISHED")
    assert losses(folder / "metrics.csv") == [(0, 1.0)]
    with pytest.raises(RuntimeError, match="before any logging"):
        logger.load_state_dict({"version": 0, "rows": 1})


def test_two_loggers_of_one_name_have_distinct_state_keys(tmp_path):
    from launcher.loggers import TensorBoardLogger

    keys = {CSVLogger(tmp_path).state_key, TensorBoardLogger(tmp_path).state_key}
    assert len(keys) == 2


def test_a_full_disk_raises_out_of_space_once_and_leaves_the_file_whole(tmp_path):
    """Issue 15 item 3: metrics.csv on a disk that fills up. One `OutOfSpace` naming the file,
    no partial row, the rows on disk as they were; a finalize while failing stays quiet."""
    from launcher.errors import OutOfSpace
    from tests.resume_harness import fill_disk, tmpfs

    with tmpfs(tmp_path / "small", "256k") as small:
        logger = CSVLogger(str(small), name="full")
        for step in range(10):
            logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        logger.save()
        path = Path(logger.log_dir) / "metrics.csv"
        before = path.read_bytes()
        fill_disk(small)
        with pytest.raises(OutOfSpace) as raised:  # it writes every 100 rows
            for step in range(10, 20000):
                logger.log_metrics({"loss": 1.0 / (step + 1), "acc": 0.5}, step=step)
        assert str(raised.value).startswith(f"out of disk space writing {path}: it needs about")
        assert path.read_bytes() == before  # no partial row, the old header
        logger.finalize("failed")  # the run is failing on it: said once
        assert path.read_bytes() == before
