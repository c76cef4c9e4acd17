"""`LambdaCallback`: functions as hooks, called with the hook's arguments, as Lightning's."""

from __future__ import annotations

import pytest

from launcher import Trainer
from launcher.callbacks import LambdaCallback
from tests.train.test_trainer import QUIET, Regressor


def test_each_given_function_runs_as_its_hook(tmp_path):
    calls: list[tuple] = []
    callback = LambdaCallback(
        on_fit_start=lambda trainer, module: calls.append(("fit_start", module.current_epoch)),
        on_train_epoch_end=lambda trainer, module: calls.append(
            ("epoch_end", trainer.current_epoch)
        ),
        on_train_batch_end=lambda trainer, module, outputs, batch, batch_idx: calls.append(
            ("batch_end", batch_idx, outputs is not None)
        ),
        on_validation_epoch_start=None,  # None: no hook, as in Lightning
    )
    Trainer(max_epochs=2, limit_train_batches=2, num_sanity_val_steps=0, callbacks=[callback],
            default_root_dir=tmp_path, **QUIET).fit(Regressor())  # fmt: skip
    assert calls == [
        ("fit_start", 0),
        ("batch_end", 0, True), ("batch_end", 1, True), ("epoch_end", 0),
        ("batch_end", 0, True), ("batch_end", 1, True), ("epoch_end", 1),
    ]  # fmt: skip


def test_an_unknown_hook_name_is_a_type_error():
    with pytest.raises(TypeError, match="unknown hook.*on_epoch_end"):
        LambdaCallback(on_epoch_end=lambda trainer, module: None)
