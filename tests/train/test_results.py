"""`self.log(...)`: Lightning's step/epoch defaults and batch-size-weighted epoch means.

    python -m pytest tests/test_results.py -q

The Trainer tests run a model whose logged values are known in advance (the mean of each
batch's inputs), so every epoch value can be checked against an exact weighted mean.
"""

from __future__ import annotations

import pytest
import torch
import torchmetrics
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module, Trainer
from launcher.callbacks import Callback
from launcher.errors import UserError
from launcher.loggers.base import Logger
from launcher.train.results import Results

QUIET = dict(logger=False, enable_progress_bar=False)
# 10 samples in batches of 4: sizes 4, 4, 2 (an uneven last batch).
VALUES = torch.arange(10, dtype=torch.float32) ** 2
WEIGHTED_MEAN = VALUES.mean().item()  # the batch-size-weighted mean of the batch means
BATCH_MEANS = [VALUES[0:4].mean().item(), VALUES[4:8].mean().item(), VALUES[8:].mean().item()]
# Per-batch sums weighted by batch size: (14 * 4 + 126 * 4 + 145 * 2) / 10.
WEIGHTED_SUM_MEAN = 85.0


class MemoryLogger(Logger):
    name = "memory"

    def __init__(self) -> None:
        self.params: dict = {}
        self.calls: list[tuple[int, dict[str, float]]] = []

    def log_hyperparams(self, params):
        self.params.update(params)

    def log_metrics(self, metrics, step):
        self.calls.append((step, dict(metrics)))

    def series(self, name: str) -> list[tuple[int, float]]:
        return [(step, m[name]) for step, m in self.calls if name in m]


class Logs(Module):
    """Logs the mean of each batch's values in several ways."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.train_acc = torchmetrics.Accuracy(task="binary")

    def training_step(self, batch, batch_idx):
        (x,) = batch
        value = x.mean()
        self.log("plain", value, prog_bar=True)  # training default: per step only
        self.log("both", value, on_step=True, on_epoch=True)
        self.log("mean", value, on_step=False, on_epoch=True)
        self.log("hidden", value, logger=False)
        self.log("count", 1.0, on_step=False, on_epoch=True, reduce_fx="sum")
        self.log("biggest", value, on_step=False, on_epoch=True, reduce_fx="max")
        # Epoch 0 predicts every label right, epoch 1 every label wrong.
        target = (x > 20).long()
        preds = target if self.current_epoch == 0 else 1 - target
        self.train_acc(preds, target)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return (self.w * value).sum()

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val_value", x.mean(), prog_bar=True)  # validation default: per epoch
        self.log("val_plain_step", x.mean(), on_step=True, on_epoch=False)
        self.log("val_number", float(x.sum()))  # a Python number, weighted too

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(TensorDataset(VALUES), batch_size=4)

    def val_dataloader(self):
        return DataLoader(TensorDataset(VALUES), batch_size=4)


class Snapshots(Callback):
    def __init__(self) -> None:
        self.after_batch: list[dict] = []
        self.after_epoch: list[dict] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.after_batch.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    def on_train_epoch_end(self, trainer, module):
        self.after_epoch.append({k: float(v) for k, v in trainer.callback_metrics.items()})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    logger, snaps = MemoryLogger(), Snapshots()
    trainer = Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, callbacks=[snaps],
                      enable_progress_bar=False,
                      default_root_dir=tmp_path_factory.mktemp("results"))  # fmt: skip
    trainer.fit(Logs())
    return trainer, logger, snaps


def test_training_logs_per_step_by_default(run):
    _, logger, snaps = run
    assert [s["plain"] for s in snaps.after_batch] == pytest.approx(BATCH_MEANS * 2)
    # At Lightning's steps: the optimizer steps taken before the logged one.
    assert logger.series("plain") == [(i, pytest.approx(m)) for i, m in
                                      enumerate(BATCH_MEANS * 2)]  # fmt: skip
    assert not any(k in m for _, m in logger.calls for k in ("plain_epoch", "plain_step"))


def test_epoch_values_are_batch_size_weighted_means(run):
    _, logger, snaps = run
    for epoch in snaps.after_epoch:
        assert epoch["mean"] == pytest.approx(WEIGHTED_MEAN, rel=1e-6)
        assert epoch["both_epoch"] == pytest.approx(WEIGHTED_MEAN, rel=1e-6)
        assert epoch["val_value"] == pytest.approx(WEIGHTED_MEAN, rel=1e-6)
        assert epoch["val_number"] == pytest.approx(WEIGHTED_SUM_MEAN, rel=1e-6)
        assert epoch["count"] == 3 and epoch["biggest"] == pytest.approx(BATCH_MEANS[2])
    # The unweighted mean of batch means differs, so the weighting is really checked.
    assert sum(BATCH_MEANS) / 3 != pytest.approx(WEIGHTED_MEAN, rel=1e-3)


def test_epoch_only_metrics_reach_the_logger_once_per_epoch(run):
    # Not re-sent with every later step's metrics (the last epoch value is stale by then).
    _, logger, _ = run
    expected = [(2, pytest.approx(WEIGHTED_MEAN)), (5, pytest.approx(WEIGHTED_MEAN))]
    assert logger.series("mean") == expected
    assert logger.series("both_epoch") == expected
    assert logger.series("count") == [(2, 3.0), (5, 3.0)]


def test_on_step_and_on_epoch_fork_the_names(run):
    trainer, logger, snaps = run
    steps = logger.series("both_step")
    assert steps == [(i, pytest.approx(m)) for i, m in enumerate(BATCH_MEANS * 2)]
    assert logger.series("both_epoch") == [(2, pytest.approx(WEIGHTED_MEAN)),
                                           (5, pytest.approx(WEIGHTED_MEAN))]  # fmt: skip
    assert not logger.series("both")
    assert snaps.after_batch[0]["both_step"] == pytest.approx(BATCH_MEANS[0])


def test_forked_metric_is_also_a_callback_metric_under_its_plain_name(run):
    # Lightning puts `name` next to `name_step`/`name_epoch` in callback_metrics, so
    # EarlyStopping(monitor="both") works for a metric logged with on_step and on_epoch.
    trainer, _, snaps = run
    assert snaps.after_batch[0]["both"] == pytest.approx(BATCH_MEANS[0])
    assert float(trainer.callback_metrics["both"]) == pytest.approx(WEIGHTED_MEAN)


def test_metric_objects_are_computed_and_reset_each_epoch(run):
    _, logger, snaps = run
    assert [e["train_acc"] for e in snaps.after_epoch] == [1.0, 0.0]  # 0.5 if never reset
    assert [v for _, v in logger.series("train_acc")][-1] == 0.0


def test_progress_bar_and_logger_flags(run):
    trainer, logger, _ = run
    assert set(trainer.progress_bar_metrics) == {"plain", "train_acc", "val_value"}
    assert trainer.progress_bar_metrics["val_value"] == pytest.approx(WEIGHTED_MEAN)
    assert all(isinstance(v, float) for v in trainer.progress_bar_metrics.values())
    assert "hidden" in trainer.callback_metrics and not logger.series("hidden")


def test_validation_epoch_metrics_reach_the_logger(run):
    _, logger, _ = run
    assert logger.series("val_value") == [(2, pytest.approx(WEIGHTED_MEAN)),
                                          (5, pytest.approx(WEIGHTED_MEAN))]  # fmt: skip
    assert not logger.series("val_plain_step_epoch")


# -- Results on its own ------------------------------------------------------------------------
def test_explicit_batch_size_overrides_the_detected_one():
    results = Results("validate")
    results.batch = torch.zeros(100, 2)  # its size would dominate if ignored
    results.log("loss", torch.tensor(1.0), batch_size=1)
    results.log("loss", torch.tensor(4.0), batch_size=3)
    assert results.epoch_metrics()["loss"].item() == pytest.approx((1 + 12) / 4)
    assert results.epoch_metrics() == {}  # reset after each epoch


def test_epoch_means_weight_by_the_size_of_the_current_batch():
    results = Results("validate")
    results.batch = (torch.zeros(1, 3), torch.zeros(1))  # (x, y): 1 sample
    results.log("loss", torch.tensor(1.0))
    results.batch = {"x": torch.zeros(3, 5), "y": torch.zeros(3)}  # 3 samples
    results.log("loss", torch.tensor(4.0))
    results.batch = "not a tensor"  # counts as 1
    results.log("loss", torch.tensor(7.0))
    assert results.epoch_metrics()["loss"].item() == pytest.approx((1 + 12 + 7) / 5)
    assert results.batch is None  # the epoch's last batch is not kept


def test_sync_dist_uses_the_reduction():
    calls = []

    def fake_all_reduce(tensor, op, group=None):  # two ranks that logged the same values
        calls.append(op)
        return tensor * 2 if op == "sum" else tensor

    results = Results("train", fake_all_reduce)
    results.log("loss", torch.tensor(3.0), on_step=True, on_epoch=True, sync_dist=True)
    assert results.step_metrics() == {"loss_step": torch.tensor(3.0)}
    assert results.epoch_metrics()["loss_epoch"].item() == pytest.approx(3.0)  # (3*2)/(1*2)
    assert calls == ["mean", "sum"]


def test_bad_reduce_fx_is_rejected():
    with pytest.raises(ValueError, match="reduce_fx"):
        Results("train").log("x", 1.0, reduce_fx="median")


def test_state_dict_resumes_the_running_mean():
    first = Results("train")
    first.log("m", torch.tensor(2.0), on_epoch=True, batch_size=2)
    second = Results("train")
    second.load_state_dict(first.state_dict())
    second.log("m", torch.tensor(5.0), on_epoch=True, batch_size=1)
    assert second.epoch_metrics()["m_epoch"].item() == pytest.approx((4 + 5) / 3)


# -- LightningModule.log's options, and where logging is allowed ---------------------------
class Options(Module):
    """Logs with each of LightningModule.log's options, and from epoch hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.acc = torchmetrics.Accuracy(task="binary")
        self.graphs: list[bool] = []

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = (self.w * x.mean()).sum()
        # Lightning's positional order: prog_bar, logger, on_step, on_epoch, reduce_fx.
        self.log("biggest", x.max(), False, True, False, True, "max")
        self.log("graph", loss, enable_graph=True)
        self.graphs.append(self.trainer.callback_metrics.get("graph", loss).requires_grad)
        self.log("mine", x.mean(), rank_zero_only=True, sync_dist=True, sync_dist_group=None)
        self.acc((x > 20).long(), (x > 20).long())
        self.log("acc", self.acc, on_step=False, on_epoch=True, metric_attribute="acc")
        return loss

    def on_train_start(self):
        self.log("started", 1.0)  # Lightning: an epoch value

    def on_train_epoch_end(self):
        self.log("epoch_value", float(self.current_epoch + 1) * 10)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(TensorDataset(VALUES), batch_size=4)


def test_every_lightning_log_option_is_honoured(tmp_path):
    logger, model = MemoryLogger(), Options()
    trainer = Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
                      enable_checkpointing=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model)
    assert logger.series("biggest") == [(2, 81.0), (5, 81.0)]  # 3 batches an epoch
    assert model.graphs and all(model.graphs)  # enable_graph keeps the autograd graph
    assert logger.series("acc") == [(2, 1.0), (5, 1.0)]
    assert [s for s, _ in logger.series("mine")] == list(range(6))
    assert logger.series("started") == [(2, 1.0)]
    # Logged in on_train_epoch_end: that epoch's value, at that epoch's last step.
    assert logger.series("epoch_value") == [(2, 10.0), (5, 20.0)]
    assert float(trainer.callback_metrics["epoch_value"]) == 20.0


@pytest.mark.parametrize(
    ("hook", "kwargs", "match"),
    [
        ("on_train_epoch_end", {"on_step": True}, "on_step=True"),
        ("on_train_epoch_end", {"on_epoch": False}, "on_epoch=False"),
        ("on_fit_start", {}, "inside `on_fit_start`"),
    ],
)
def test_logging_where_lightning_refuses_it_is_an_error(tmp_path, hook, kwargs, match):
    class Refused(Options):
        pass

    setattr(Refused, hook, lambda self: self.log("x", 1.0, **kwargs))
    trainer = Trainer(max_epochs=1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, default_root_dir=tmp_path)  # fmt: skip
    with pytest.raises(UserError, match=match):
        trainer.fit(Refused())


def test_log_values_and_metric_attributes_are_checked_as_lightning_does(tmp_path):
    class Checked(Options):
        def training_step(self, batch, batch_idx):
            with pytest.raises(ValueError, match="single element"):
                self.log("vector", torch.ones(3))
            with pytest.raises(ValueError, match="nested dictionaries"):
                self.log("nested", {"a": 1.0})
            with pytest.raises(ValueError, match="`str` values cannot be logged"):
                self.log("text", "hello")
            stray = torchmetrics.Accuracy(task="binary")
            with pytest.raises(UserError, match="attribute for the `torchmetrics.Metric`"):
                self.log("stray", stray)
            with pytest.raises(UserError, match="metric_attribute='w'"):
                self.log("acc", self.acc, metric_attribute="w")
            with pytest.raises(UserError, match="dataloader_idx"):
                self.log("x/dataloader_idx_0", 1.0)
            self.checked = True
            return super().training_step(batch, batch_idx)

    model = Checked()
    Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
            default_root_dir=tmp_path).fit(model)  # fmt: skip
    assert model.checked


def test_values_logged_in_on_validation_epoch_end_count_for_that_epoch(tmp_path):
    class EvalEnd(Options):
        def validation_step(self, batch, batch_idx):
            self.log("val_mean", batch[0].mean())

        def on_validation_epoch_end(self):
            self.log("val_end", float(self.current_epoch))

        def val_dataloader(self):
            return DataLoader(TensorDataset(VALUES), batch_size=4)

    logger = MemoryLogger()
    trainer = Trainer(max_epochs=2, logger=logger, enable_progress_bar=False,
                      num_sanity_val_steps=0, enable_checkpointing=False,
                      default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(EvalEnd())
    assert logger.series("val_end") == [(2, 0.0), (5, 1.0)]
    assert [m for _, m in logger.calls if "val_end" in m][0].keys() >= {"val_mean", "epoch"}
    again = Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    assert again.validate(EvalEnd())[0]["val_end"] == 0.0
