"""Lightning's `TQDMProgressBar` / `RichProgressBar`: our `ProgressBar`, every N batches."""

from __future__ import annotations

import re

import pytest

from launcher import Trainer
from launcher.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar
from launcher.errors import UserError
from tests.train.test_trainer import Regressor


def _fit(tmp_path, bar) -> Trainer:
    trainer = Trainer(max_epochs=1, logger=False, enable_model_summary=False, callbacks=[bar],
                      num_sanity_val_steps=0, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(Regressor())  # 8 train batches, 8 validation batches
    return trainer


@pytest.mark.parametrize("cls", [TQDMProgressBar, RichProgressBar])
def test_refresh_rate_draws_every_n_batches_and_the_last(tmp_path, capsys, cls):
    bar = cls(refresh_rate=3)
    trainer = _fit(tmp_path, bar)
    assert [c for c in trainer.callbacks if isinstance(c, ProgressBar)] == [bar]  # no second bar
    out = capsys.readouterr().out  # not a TTY: plain lines
    assert re.findall(r"epoch 0 step (\d+)/8", out) == ["3", "6", "8"]
    assert re.findall(r"  validate step (\d+)/8", out) == ["3", "6", "8"]
    assert "epoch 0 done in" in out
    assert bar.refresh_rate == 3


@pytest.mark.parametrize("cls", [TQDMProgressBar, RichProgressBar])
def test_refresh_rate_zero_disables_the_bar(tmp_path, capsys, cls):
    _fit(tmp_path, cls(refresh_rate=0))
    assert "epoch 0" not in capsys.readouterr().out


def test_options_we_cannot_honour_raise():
    with pytest.raises(UserError, match="process_position"):
        TQDMProgressBar(process_position=1)
    with pytest.raises(UserError, match="theme"):
        RichProgressBar(theme=object())
    with pytest.raises(UserError, match="console_kwargs"):
        RichProgressBar(console_kwargs={"width": 80})
