"""`configure_optimizers()` forms and learning-rate schedules, driven by the real Trainer.

    python -m pytest tests/test_optim.py -q

Learning rates are read at every batch start, so each test counts exactly when they change.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module, Trainer
from launcher.callbacks import Callback
from launcher.errors import UserError
from launcher.train.optim import SchedulerConfig, parse_optimizers

QUIET = dict(logger=False, enable_progress_bar=False)
STEPS_PER_EPOCH = 4


class TwoLayer(Module):
    """Two linear layers; `optimizers(model)` decides what configure_optimizers returns."""

    def __init__(self, optimizers, val_losses: list[float] | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first, self.second = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
        self._optimizers, self.val_losses = optimizers, val_losses

    def forward(self, x):
        return self.second(torch.relu(self.first(x))).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        if self.val_losses is not None:
            self.log("val_loss", self.val_losses[self.current_epoch])

    def configure_optimizers(self):
        return self._optimizers(self)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(8 * STEPS_PER_EPOCH, 4, generator=g)
        return DataLoader(TensorDataset(x, x.sum(1)), batch_size=8)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(2, 4)), batch_size=2)


class LrRecorder(Callback):
    """The learning rate of every optimizer, read at every batch start (before the step)."""

    def __init__(self) -> None:
        self.lrs: list[tuple[float, ...]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.lrs.append(tuple(o.param_groups[0]["lr"] for o in trainer.optimizers))

    def changes(self, index: int = 0) -> int:
        values = [lrs[index] for lrs in self.lrs]
        return sum(a != b for a, b in zip(values, values[1:], strict=False))


def fit(tmp_path, model: Module, epochs: int = 3) -> tuple[Trainer, LrRecorder]:
    recorder = LrRecorder()
    trainer = Trainer(max_epochs=epochs, callbacks=[recorder], default_root_dir=tmp_path, **QUIET)
    trainer.fit(model)
    return trainer, recorder


def sgd_with(interval: str | None = None, frequency: int = 1):
    def make(model):
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        config: dict = {"scheduler": sched, "frequency": frequency}
        if interval:
            config["interval"] = interval
        return {"optimizer": opt, "lr_scheduler": config}

    return make


@pytest.mark.parametrize(
    ("interval", "frequency", "changes", "final_halvings"),
    [
        ("step", 1, 3 * STEPS_PER_EPOCH - 1, 3 * STEPS_PER_EPOCH),
        ("step", 2, 3 * STEPS_PER_EPOCH // 2 - 1, 3 * STEPS_PER_EPOCH // 2),
        ("epoch", 1, 2, 3),
        (None, 1, 2, 3),  # Lightning's default interval is "epoch"
        ("epoch", 2, 1, 1),  # stepped after epoch 1 only (a 4th epoch would step again)
    ],
)
def test_scheduler_interval_and_frequency(tmp_path, interval, frequency, changes, final_halvings):
    trainer, recorder = fit(tmp_path, TwoLayer(sgd_with(interval, frequency)))
    assert len(recorder.lrs) == 3 * STEPS_PER_EPOCH
    assert recorder.changes() == changes  # lr changes seen between batches
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.5**final_halvings
    if interval == "epoch" and frequency == 1:
        per_epoch = [recorder.lrs[i][0] for i in range(0, 12, STEPS_PER_EPOCH)]
        assert per_epoch == [1.0, 0.5, 0.25]


def test_reduce_lr_on_plateau_follows_the_monitored_metric(tmp_path):
    def plateau(model):
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}

    # Improves, improves, stalls, stalls, improves: reduced after epochs 2 and 3 only.
    model = TwoLayer(plateau, val_losses=[3.0, 2.0, 2.0, 2.5, 1.0, 1.0])
    trainer, recorder = fit(tmp_path, model, epochs=5)
    per_epoch = [recorder.lrs[i][0] for i in range(0, 5 * STEPS_PER_EPOCH, STEPS_PER_EPOCH)]
    assert per_epoch == [1.0, 1.0, 1.0, 0.5, 0.25]
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.25


def test_top_level_monitor_key_and_missing_monitor(tmp_path):
    def plateau(model):
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
        return {"optimizer": opt, "lr_scheduler": sched, "monitor": "val_loss"}

    trainer, _ = fit(tmp_path / "a", TwoLayer(plateau, val_losses=[1.0, 1.0, 1.0]))
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.25
    with pytest.raises(UserError, match="val_loss"):
        fit(tmp_path / "b", TwoLayer(plateau))  # val_loss is never logged


def test_tuple_form_with_two_optimizers_and_schedulers(tmp_path):
    def two(model):
        opt_a = torch.optim.SGD(model.first.parameters(), lr=1.0)
        opt_b = torch.optim.SGD(model.second.parameters(), lr=0.1)
        sched_a = torch.optim.lr_scheduler.StepLR(opt_a, step_size=1, gamma=0.5)
        sched_b = torch.optim.lr_scheduler.StepLR(opt_b, step_size=1, gamma=0.1)
        return [opt_a, opt_b], [sched_a, sched_b]

    model = TwoLayer(two)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer, recorder = fit(tmp_path, model, epochs=2)
    assert len(trainer.optimizers) == 2 and len(trainer.lr_scheduler_configs) == 2
    # Both optimizers stepped: every parameter moved.
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    # Both schedulers stepped once per epoch (the tuple form's default interval).
    assert recorder.lrs[0] == (1.0, 0.1)
    assert recorder.lrs[STEPS_PER_EPOCH] == (0.5, pytest.approx(0.01))
    assert trainer.global_step == 2 * STEPS_PER_EPOCH  # one global step per batch


def test_multiple_optimizers_each_step_their_own_parameters(tmp_path):
    # lr=0 for the second optimizer: only the first layer may change.
    def two(model):
        return [torch.optim.SGD(model.first.parameters(), lr=0.1),
                torch.optim.SGD(model.second.parameters(), lr=0.0)]  # fmt: skip

    model = TwoLayer(two)
    first, second = model.first.weight.clone(), model.second.weight.clone()
    fit(tmp_path, model, epochs=1)
    assert not torch.equal(model.first.weight, first)
    assert torch.equal(model.second.weight, second)


def test_parse_optimizers_forms():
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    assert parse_optimizers(opt) == ([opt], [])
    assert parse_optimizers([opt]) == ([opt], [])
    optimizers, configs = parse_optimizers({"optimizer": opt, "lr_scheduler": {
        "scheduler": sched, "interval": "step", "frequency": 3, "name": "lr-main"}})  # fmt: skip
    assert optimizers == [opt]
    assert configs == [SchedulerConfig(sched, interval="step", frequency=3)]
    optimizers, configs = parse_optimizers([{"optimizer": opt}, {"optimizer": opt,
                                                                 "lr_scheduler": sched}])  # fmt: skip
    assert optimizers == [opt, opt] and configs == [SchedulerConfig(sched)]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({"optimizer": None, "lr_sched": 1}, "valid keys"),
        ("adam", "return an optimizer"),
        ({"optimizer": "x", "lr_scheduler": {"scheduler": 1, "interval": "batch"}}, "'batch'"),
        ({"optimizer": "x", "lr_scheduler": {"scheduler": 1, "every": 2}}, "valid keys"),
    ],
)
def test_bad_configure_optimizers_is_a_user_error(value, needle):
    with pytest.raises(UserError, match=needle):
        parse_optimizers(value)


def test_step_schedulers_follow_optimizer_steps_under_accumulation(tmp_path):
    recorder = LrRecorder()
    trainer = Trainer(max_epochs=2, accumulate_grad_batches=2, callbacks=[recorder],
                      default_root_dir=tmp_path, **QUIET)  # fmt: skip
    trainer.fit(TwoLayer(sgd_with("step")))
    # 4 batches per epoch = 2 optimizer steps per epoch: the lr halves every second batch.
    assert [lrs[0] for lrs in recorder.lrs] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    assert trainer.global_step == 4 and trainer.optimizers[0].param_groups[0]["lr"] == 0.5**4


def test_learning_rate_monitor_logs_the_schedule(tmp_path):
    from launcher.callbacks import LearningRateMonitor
    from launcher.loggers.base import Logger

    class MemoryLogger(Logger):
        name = "memory"

        def __init__(self) -> None:
            self.lrs: list[float] = []

        def log_metrics(self, metrics, step):
            if "lr-SGD" in metrics:
                self.lrs.append(metrics["lr-SGD"])

    logger = MemoryLogger()
    Trainer(max_epochs=3, logger=logger, callbacks=[LearningRateMonitor()],
            enable_progress_bar=False, default_root_dir=tmp_path).fit(TwoLayer(sgd_with("epoch")))  # fmt: skip
    assert logger.lrs == [1.0, 0.5, 0.25]  # one value per epoch start
