"""`StochasticWeightAveraging`: Lightning's schedule and average; exact resume of its state."""

from __future__ import annotations

import copy

import pytest
import torch

from launcher import Trainer
from launcher.callbacks import Callback, StochasticWeightAveraging
from launcher.errors import UserError
from tests.resume_harness import SaveAt, assert_bitwise_equal
from tests.train.test_trainer import QUIET, Regressor


class Snapshots(Callback):
    """The weights as each epoch starts (what SWA averages) and the lr of each epoch."""

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []
        self.lrs: list[float] = []

    def on_train_epoch_start(self, trainer, module):
        self.weights.append(copy.deepcopy(module.net.weight.detach()))
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_the_average_of_the_swa_epochs_replaces_the_weights_at_the_end(tmp_path):
    snaps = Snapshots()  # before SWA in the list: sees the weights SWA averages
    swa = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=3, annealing_epochs=2)
    model = Regressor()
    trainer = Trainer(max_epochs=5, callbacks=[snaps, swa], default_root_dir=tmp_path, **QUIET)
    trainer.fit(model)
    # swa_start = epoch 2 (0-based) to swa_end = epoch 4: the weights as epochs 2, 3, 4 start
    expected = torch.stack(snaps.weights[2:5]).mean(0)
    torch.testing.assert_close(model.net.weight.detach(), expected)
    assert swa.n_averaged.item() == 3
    assert snaps.lrs[:3] == [0.1, 0.1, 0.1]  # SWALR takes over from epoch 2's end
    assert snaps.lrs[3] != 0.1 and len(trainer.lr_scheduler_configs) == 1


def test_resume_inside_the_swa_window_is_exact(tmp_path):
    def run(root, model, *extra, ckpt=None):
        swa = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2, annealing_epochs=2)
        Trainer(max_epochs=4, callbacks=[swa, *extra], seed=0, default_root_dir=root,
                **QUIET).fit(model, ckpt_path=ckpt)  # fmt: skip

    straight = Regressor()
    run(tmp_path / "straight", straight)
    ckpt = tmp_path / "mid.ckpt"
    run(tmp_path / "first", Regressor(), SaveAt(20, ckpt))  # epoch 2, batch 4
    saved = torch.load(ckpt, weights_only=True)["callbacks"]["StochasticWeightAveraging"]
    assert saved["n_averaged"] == 2 and saved["scheduler_state"] is not None
    resumed = Regressor()
    run(tmp_path / "resumed", resumed, ckpt=str(ckpt))
    assert_bitwise_equal(resumed.state_dict(), straight.state_dict())


def test_batchnorm_models_and_bad_arguments_are_refused(tmp_path):
    class WithBN(Regressor):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm1d(4)

    swa = StochasticWeightAveraging(swa_lrs=0.05)
    with pytest.raises(UserError, match="BatchNorm"):
        Trainer(max_epochs=2, callbacks=[swa], default_root_dir=tmp_path, **QUIET).fit(WithBN())
    with pytest.raises(UserError, match="swa_lrs"):
        StochasticWeightAveraging(swa_lrs=-1.0)
    with pytest.raises(UserError, match="swa_epoch_start"):
        StochasticWeightAveraging(swa_lrs=0.1, swa_epoch_start=0)
