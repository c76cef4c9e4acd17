"""`OnExceptionCheckpoint`: a failing fit leaves a checkpoint to resume from; success none."""

from __future__ import annotations

import pytest
import torch

from launcher import Trainer
from launcher.callbacks import OnExceptionCheckpoint
from tests.train.test_trainer import QUIET, Regressor


class Crash(Regressor):
    def training_step(self, batch, batch_idx):
        if self.global_step == 3:
            raise RuntimeError("boom")
        return super().training_step(batch, batch_idx)


def test_an_exception_writes_the_checkpoint_and_it_resumes(tmp_path):
    callback = OnExceptionCheckpoint(dirpath=tmp_path / "ckpt")
    with pytest.raises(RuntimeError, match="boom"):
        Trainer(max_epochs=1, callbacks=[callback], default_root_dir=tmp_path,
                **QUIET).fit(Crash())  # fmt: skip
    assert callback.ckpt_path == str(tmp_path / "ckpt" / "on_exception.ckpt")
    saved = torch.load(callback.ckpt_path, weights_only=True)
    assert saved["global_step"] == 3
    model = Regressor()
    trainer = Trainer(max_epochs=1, default_root_dir=tmp_path, **QUIET)
    trainer.fit(model, ckpt_path=callback.ckpt_path)
    assert trainer.global_step == 8 and model.train_calls == 5  # the 5 batches left


def test_a_run_that_finishes_removes_it(tmp_path):
    callback = OnExceptionCheckpoint(dirpath=tmp_path, filename="crash")
    (tmp_path / "crash.ckpt").write_bytes(b"an older one")
    Trainer(max_epochs=1, callbacks=[callback], default_root_dir=tmp_path, **QUIET).fit(Regressor())
    assert not (tmp_path / "crash.ckpt").exists()


def test_the_filename_may_not_be_empty(tmp_path):
    with pytest.raises(ValueError, match="cannot be empty"):
        OnExceptionCheckpoint(tmp_path, filename="")
