"""`Trainer.predict`, `BasePredictionWriter` and evaluating the fitted model, run under
Lightning and here (recipes/predict.py): the same hooks in the same order, the same
predictions' shapes and batch indices, the same warnings, the same default checkpoint name."""

from __future__ import annotations

import pytest

from tests.lightning_compat.harness import run_recipe

pytestmark = pytest.mark.slow  # two fresh processes, one of them importing Lightning


@pytest.fixture(scope="module")
def predict_reports(tmp_path_factory, lightning_python):
    out = tmp_path_factory.mktemp("predict")
    lightning = run_recipe("lightning", "predict.py", out / "pl", python=lightning_python)
    return lightning, run_recipe("launcher", "predict.py", out / "ours")


def test_predict_hooks_and_outputs_match_lightning(predict_reports):
    lightning, ours = predict_reports
    assert ours["hooks"] == lightning["hooks"]
    assert "module.predict_step:False:True" in ours["hooks"]  # eval mode, inference mode
    assert ours["shapes"] == lightning["shapes"] == [[4, 2], [4, 2], [2, 2]]
    assert ours["two_loaders"] == lightning["two_loaders"] == [[[4, 2], [2, 2]], [[2, 2], [1, 2]]]
    assert ours["limited"] == lightning["limited"] == 2
    assert ours["no_return"] is lightning["no_return"] is None
    assert ours["train_mode_after"] is lightning["train_mode_after"] is True


def test_prediction_writer_sees_what_lightnings_sees(predict_reports):
    lightning, ours = predict_reports
    assert ours["writer"] == lightning["writer"]
    assert ours["writer_two"] == lightning["writer_two"]
    assert ours["writer"]["epochs"][0][1] == [[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]]


def test_evaluating_without_a_model_uses_the_best_checkpoint_as_lightning(predict_reports):
    lightning, ours = predict_reports
    assert ours["predict_no_model_matches_best"] and lightning["predict_no_model_matches_best"]
    assert ours["predict_no_model_warnings"] == lightning["predict_no_model_warnings"]
    assert ours["eval_warnings"] == lightning["eval_warnings"]
    assert ours["validate"] == lightning["validate"] and ours["test_last"] == lightning["test_last"]


def test_the_default_model_checkpoint_is_lightnings(predict_reports):
    lightning, ours = predict_reports
    assert ours["default_checkpoint"] == lightning["default_checkpoint"] == "epoch=1-step=6.ckpt"
    assert ours["checkpoint_files"] == lightning["checkpoint_files"] == ["epoch=1-step=6.ckpt"]
