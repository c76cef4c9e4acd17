"""Inputs that would train nothing or the wrong thing: user errors (exit 2) and warnings."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from launcher import Trainer
from launcher.cli.recipe import load_recipe
from launcher.loggers import CSVLogger
from tests.resume_harness import TINY, final_state, make_spec, run_worker


def _tiny(tmp_path: Path, **kwargs):
    recipe = load_recipe(TINY)
    trainer = Trainer(**{**recipe.trainer_defaults, "logger": False, "seed": 0,
                         "enable_checkpointing": False, "num_sanity_val_steps": 0,
                         "run_dir": str(tmp_path / "run"), **kwargs})  # fmt: skip
    return trainer, recipe.module_cls


EMPTY = """
from torch.utils.data import DataLoader
from tests.recipes.tiny import TinyModel, make_data


class Empty(TinyModel):  # a dataset that came out empty (a wrong path, a filter)
    def train_dataloader(self):
        return DataLoader(make_data(0, 0), batch_size=8)
"""


@pytest.mark.slow
def test_an_empty_train_dataloader_is_a_user_error(tmp_path: Path) -> None:
    recipe = tmp_path / "empty_recipe.py"
    recipe.write_text(EMPTY)
    spec = make_spec(tmp_path / "out", "empty", recipe=str(recipe), module="Empty")
    assert run_worker(spec, tmp_path / "a.log") == 2
    text = (tmp_path / "a.log").read_text()
    assert "the train dataloader is empty: 0 batches (dataset of 0 samples, batch_size=8)" in text
    assert "limit_train_batches=0" in text and "Traceback" not in text
    # Skipping training on purpose (Lightning's limit_train_batches=0) stays allowed.
    trainer, model_cls = _tiny(tmp_path, limit_train_batches=0, max_epochs=1)
    trainer.fit(model_cls())
    assert trainer.global_step == 0


EMPTY_STREAM = """
from torch.utils.data import DataLoader, IterableDataset
from tests.recipes.tiny import TinyModel


class NoSamples(IterableDataset):  # a stream with no length that yields nothing
    def __iter__(self):
        return iter(())


class EmptyStream(TinyModel):
    def train_dataloader(self):
        return DataLoader(NoSamples(), batch_size=8)
"""


@pytest.mark.slow
def test_an_empty_iterable_train_dataloader_is_a_user_error(tmp_path: Path) -> None:
    recipe = tmp_path / "empty_stream.py"
    recipe.write_text(EMPTY_STREAM)
    spec = make_spec(tmp_path / "out", "stream", recipe=str(recipe), module="EmptyStream",
                     overrides={"trainer.max_epochs": "3"})  # fmt: skip
    assert run_worker(spec, tmp_path / "a.log") == 2
    text = (tmp_path / "a.log").read_text()
    assert "the train dataloader yielded no batches in epoch 0" in text, text[-2000:]
    assert "IterableDataset" in text and "Traceback" not in text
    errors = [ln for ln in text.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, text[-2000:]


@pytest.mark.slow
def test_resuming_a_finished_checkpoint_of_another_model_is_refused_before_anything(
    tmp_path: Path,
) -> None:
    spec = make_spec(tmp_path / "out", "other", overrides={"trainer.max_steps": "3"})
    assert run_worker(spec, tmp_path / "a.log") == 0
    before = final_state(spec)
    other = make_spec(
        tmp_path / "out", "other", overrides={"trainer.max_steps": "3", "hidden": "8"}
    )
    assert run_worker(other, tmp_path / "b.log") == 2
    text = (tmp_path / "b.log").read_text()
    assert "already finished" not in text and "Traceback" not in text
    assert "the model no longer matches checkpoint" in text
    assert "net.0.weight: (32, 16) in the checkpoint, (8, 16) now" in text
    assert torch.equal(final_state(spec)["state_dict"]["net.0.weight"],
                       before["state_dict"]["net.0.weight"])  # fmt: skip


def test_a_training_step_returning_none_every_batch_warns_once_naming_the_step(
    tmp_path: Path,
) -> None:
    trainer, model_cls = _tiny(tmp_path, max_epochs=2)

    class NoLoss(model_cls):
        def training_step(self, batch, batch_idx):
            super().training_step(batch, batch_idx)
            return None

    with pytest.warns(UserWarning, match="returned None for all") as record:
        trainer.fit(NoLoss())
    messages = [str(w.message) for w in record if "returned None" in str(w.message)]
    assert messages == [
        "training_step returned None for all 12 batches of epoch 0 (through global step 12): "
        'nothing was trained. Return the loss tensor (or a dict with "loss"); None skips a '
        "batch, as in Lightning."
    ]


class _NaNAfter:
    """A training_step whose loss turns NaN from global step `at` on."""

    at = 3

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)  # type: ignore[misc]
        if self.trainer.global_step >= self.at:
            loss = loss * torch.tensor(float("nan"))
        return loss


def test_a_non_finite_loss_warns_once_at_a_logging_step(tmp_path: Path) -> None:
    trainer, model_cls = _tiny(tmp_path, max_steps=8, logger=CSVLogger(str(tmp_path / "csv")))
    model = type("NaNLoss", (_NaNAfter, model_cls), {})()
    with pytest.warns(UserWarning, match="non-finite loss") as record:
        trainer.fit(model)
    (message,) = [str(w.message) for w in record if "non-finite" in str(w.message)]
    assert message.startswith(
        "training_step returned a non-finite loss (nan) at global step 4 (epoch 0, batch 3)."
    )
    assert "detect_anomaly=True" in message


def test_detect_anomaly_runs_fit_under_autograd_anomaly_mode(tmp_path: Path) -> None:
    trainer, model_cls = _tiny(tmp_path, max_steps=8, detect_anomaly=True)
    model = type("NaNLoss", (_NaNAfter, model_cls), {})()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anomaly mode's own traceback warning
        with pytest.raises(RuntimeError, match="returned nan values"):
            trainer.fit(model)
    assert trainer.global_step == 3 and not torch.is_anomaly_enabled()
