"""`Timer`: stops fit once its duration has passed; measures stages; resumes its count."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import torch

from launcher import Trainer
from launcher.callbacks import Timer
from launcher.errors import UserError
from tests.resume_harness import SaveAt
from tests.train.test_trainer import QUIET, Regressor


class Slow(Regressor):
    def training_step(self, batch, batch_idx):
        time.sleep(0.05)
        return super().training_step(batch, batch_idx)


def test_duration_stops_training_after_the_step_that_reaches_it(tmp_path):
    timer = Timer(duration={"seconds": 0.3}, verbose=False)  # ~6 steps of 0.05 s
    trainer = Trainer(max_epochs=5, callbacks=[timer], default_root_dir=tmp_path, **QUIET)
    trainer.fit(Slow())
    assert 3 <= trainer.global_step < 10  # not the 40 steps of 5 epochs
    assert timer.time_elapsed("train") >= 0.3
    assert timer.time_elapsed("validate") > 0  # the sanity check's validation
    assert timer.time_elapsed("test") == 0 and timer.start_time("test") is None
    assert timer.time_remaining() <= 0


def test_interval_epoch_checks_only_at_epoch_ends(tmp_path):
    timer = Timer(duration=timedelta(seconds=0.01), interval="epoch", verbose=False)
    trainer = Trainer(max_epochs=5, callbacks=[timer], default_root_dir=tmp_path, **QUIET)
    trainer.fit(Slow())
    assert trainer.global_step == 8  # one whole epoch


def test_elapsed_training_time_is_in_the_checkpoint_and_counts_on_resume(tmp_path):
    ckpt = tmp_path / "mid.ckpt"
    trainer = Trainer(max_epochs=1, callbacks=[Timer(verbose=False), SaveAt(6, ckpt)],
                      default_root_dir=tmp_path, **QUIET)  # fmt: skip
    trainer.fit(Slow())
    spent = torch.load(ckpt, weights_only=True)["callbacks"]["Timer"]["time_elapsed"]
    assert set(spent) == {"train", "sanity_check", "validate", "test", "predict"}
    assert spent["train"] >= 0.3  # 6 steps of 0.05 s
    # A budget already spent stops the resumed run before it trains (Lightning's on_fit_start).
    again = Timer(duration={"seconds": 0.2}, verbose=False)
    resumed = Trainer(max_epochs=3, callbacks=[again], default_root_dir=tmp_path, **QUIET)
    model = Slow()
    resumed.fit(model, ckpt_path=str(ckpt))
    assert again.time_elapsed() >= spent["train"]
    assert resumed.global_step == 6 and model.train_calls == 0


@pytest.mark.parametrize("duration", ["1:00:00", "00:1:00:00", "soon"])
def test_a_bad_duration_string_names_the_format(duration):
    with pytest.raises(UserError, match="DD:HH:MM:SS"):
        Timer(duration=duration)


def test_a_day_string_parses():
    assert Timer(duration="01:02:03:04")._duration == 93784  # noqa: SLF001
