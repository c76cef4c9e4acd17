"""TensorBoardLogger: event files in Lightning's folders, read back with TensorBoard's reader.

python -m pytest tests/loggers/test_tensorboard.py -x -q
"""

from __future__ import annotations

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from launcher.loggers import TensorBoardLogger


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {t: [(e.step, e.value) for e in events.Scalars(t)] for t in events.Tags()["scalars"]}


def test_scalars_hparams_and_layout(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="mnist")
    assert logger.log_dir == str(tmp_path / "mnist" / "version_0")
    logger.log_hyperparams({"lr": 0.1, "model": {"width": 8}})
    for step in range(3):
        logger.log_metrics({"train/loss": 1.0 / (step + 1), "lr": torch.tensor(0.5)}, step=step)
    logger.log_metrics({"val": {"a": 1.0, "b": 2.0}}, step=2)  # a dict: add_scalars
    logger.finalize("success")

    folder = tmp_path / "mnist" / "version_0"
    found = scalars(folder)
    assert found["train/loss"] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1.0 / 3))]  # float32
    assert found["lr"] == [(0, 0.5), (1, 0.5), (2, 0.5)]
    assert found["hp_metric"] == [(0, -1.0)]  # default_hp_metric, as Lightning
    assert scalars(folder / "val_a")["val"] == [(2, 1.0)]
    hparams = yaml.safe_load((folder / "hparams.yaml").read_text())
    assert hparams == {"lr": 0.1, "model": {"width": 8}}
    assert TensorBoardLogger(tmp_path, name="mnist").version == 1


def test_graph_and_bad_values(tmp_path):
    model = torch.nn.Linear(3, 2)
    logger = TensorBoardLogger(tmp_path, log_graph=True, default_hp_metric=False)
    logger.log_graph(model, torch.zeros(1, 3))
    logger.log_hyperparams({"lr": 0.1})  # no hp_metric asked for: nothing written
    with pytest.raises(ValueError, match="cannot log text='not a number'"):
        logger.log_metrics({"text": "not a number"}, step=0)
    logger.finalize("success")
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert events.Tags()["graph"] is True and events.Tags()["scalars"] == []


def test_resume_continues_the_version_and_purges_replayed_steps(tmp_path):
    first = TensorBoardLogger(tmp_path)
    for step in range(6):
        first.log_metrics({"loss": float(step)}, step=step)
        if step == 3:
            state = first.state_dict()  # the checkpoint
    first.finalize("failed")
    assert state == {"version": 0, "last_step": 3}

    resumed = TensorBoardLogger(tmp_path)
    resumed.load_state_dict(state)
    for step in range(4, 8):  # replays 4 and 5
        resumed.log_metrics({"loss": 10.0 + step}, step=step)
    resumed.finalize("success")
    assert resumed.log_dir == str(tmp_path / "lightning_logs" / "version_0")
    loss = scalars(resumed.log_dir)["loss"]
    assert loss == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0)] + [(s, 10.0 + s) for s in range(4, 8)]
