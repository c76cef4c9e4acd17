"""`self.log` options, epoch-end logging, torchmetrics objects and the Trainer's logger calls,
under Lightning and under launcher (recipes/logging_api.py).

python -m pytest tests/lightning_compat/test_logging_vs_lightning.py -x -q
"""

from __future__ import annotations

import pytest

from tests.lightning_compat.harness import run_recipe


@pytest.fixture(scope="module")
def reports(lightning_python, tmp_path_factory):
    root = tmp_path_factory.mktemp("logging")
    lightning = run_recipe("lightning", "logging_api.py", root / "pl", python=lightning_python)
    ours = run_recipe("launcher", "logging_api.py", root / "ours")
    return lightning, ours


def _without_our_extras(calls):
    """Ours also records the run's params (trainer settings, even when the model has no
    hyperparameters), and each rolling resume checkpoint flushes the loggers (`save`)."""
    out = []
    for call in calls:
        if call == "log_hyperparams" or (call == "save" and out and out[-1] == "save"):
            continue
        out.append(call)
    return out


@pytest.mark.slow
def test_epoch_end_values_reach_monitors_and_loggers_in_their_epoch(reports):
    lightning, ours = reports
    assert ours["seen"] == lightning["seen"]
    assert ours["callback_metrics"] == lightning["callback_metrics"]
    assert ours["callback_metrics"]["epoch_end_value"] == 9.0  # the last epoch's, not one late
    assert (ours["best"], ours["best_score"]) == (lightning["best"], lightning["best_score"])
    assert ours["best"] == "epoch=1-step=6.ckpt"
    assert ours["csv"] == lightning["csv"]  # same rows, steps, epoch column


@pytest.mark.slow
def test_the_trainer_calls_its_loggers_as_lightnings_does(reports):
    lightning, ours = reports
    assert _without_our_extras(ours["calls"]) == lightning["calls"]
    assert ours["calls"][-1] == "finalize:success"
    assert ours["calls"].count("after_save_checkpoint:epoch=1-step=6.ckpt") == 2  # top-k, last


@pytest.mark.slow
def test_log_dir_and_the_default_checkpoint_dir_follow_the_first_logger(reports):
    lightning, ours = reports
    assert (ours["log_dir"], ours["ckpt_dir"]) == (lightning["log_dir"], lightning["ckpt_dir"])
    assert ours["ckpt_dir"] == "rec/rec/v0/checkpoints"
