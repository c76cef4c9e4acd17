"""Callbacks' bookkeeping, driven by a small stand-in trainer that really writes files.

The stand-in implements the trainer attributes the callbacks use (ARCHITECTURE.md, Contracts);
end-to-end tests with the real Trainer live in tests/test_trainer*.py.
"""

from __future__ import annotations

import io
import math
import os
import re
from types import SimpleNamespace

import pytest
import torch

from launcher.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    model_checkpoint,
    progress,
)
from launcher.callbacks.lr_monitor import optimizer_names
from launcher.errors import UserError
from launcher.loggers.base import Logger
from launcher.train.checkpoint_store import BackgroundSaver


class StandInTrainer:
    """The trainer surface callbacks use; `save_checkpoint` writes a real torch file."""

    def __init__(self, root, rank: int = 0, channel: list | None = None) -> None:
        self.current_epoch = 0
        self.global_step = 0
        self.max_epochs = 10
        self.callback_metrics: dict[str, torch.Tensor] = {}
        self.progress_bar_metrics: dict[str, float] = {}
        self.global_rank = rank
        self.is_global_zero = rank == 0
        self.world_size = 1 if channel is None else 2
        self.checkpoint_dir = os.path.join(str(root), "checkpoints")
        self.fast_dev_run = 0
        self.stage = "fit"
        self.should_stop = False
        self.enable_progress_bar = True
        self.num_training_batches = 10
        self.num_val_batches = 4
        self.num_test_batches = 4
        self.check_val_every_n_epoch = 1
        self.val_check_interval = 1.0
        self.sanity_checking = False
        self.log_every_n_steps = 1
        self.loggers = [Logger()]
        self.default_logger = True  # Trainer(logger=True): checkpoints stay in checkpoint_dir
        self.optimizers: list = []
        self.lr_scheduler_configs: list = []
        self.callbacks: list = []
        self.loop = SimpleNamespace(last_val_batch=0)  # a validation has run
        self.saved: list[tuple[str, bool]] = []
        self.checkpoint_files = BackgroundSaver()  # the real trainer's: deletes run through it
        self.logged: list[tuple[int | None, dict]] = []
        # Two stand-ins sharing `channel` act as ranks 0 and 1 of one job (rank 0 runs first).
        self._channel = channel

    def broadcast(self, obj):
        if self._channel is None:
            return obj
        if self.is_global_zero:
            self._channel.append(obj)
            return obj
        return self._channel.pop(0)

    def save_checkpoint(self, path: str, weights_only: bool = False, background: bool = False):
        self.saved.append((path, weights_only))
        if self.is_global_zero:  # the real trainer writes on rank 0 only
            os.makedirs(os.path.dirname(path), exist_ok=True)
            states = {cb.state_key: cb.state_dict() for cb in self.callbacks}
            torch.save({"callbacks": states, "global_step": self.global_step}, path)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logged.append((step, dict(metrics)))


@pytest.fixture
def removed(monkeypatch) -> list[str]:
    """Paths ModelCheckpoint deleted (for real), in order, by any rank."""
    deleted: list[str] = []
    delete = model_checkpoint.delete_checkpoint

    def recording(path: str) -> None:
        deleted.append(path)
        delete(path)

    monkeypatch.setattr(model_checkpoint, "delete_checkpoint", recording)
    return deleted


def run_epochs(trainer, callbacks, metrics_per_epoch, steps_per_epoch=5, first_epoch=0):
    """Drive `on_train_epoch_end` once per dict of metrics; stop when asked."""
    trainer.callbacks = callbacks
    for cb in callbacks:
        if hasattr(cb, "setup"):
            cb.setup(trainer, None, "fit")
    for cb in callbacks:  # the Trainer's order: setup, (a resume's restore), on_fit_start
        if hasattr(cb, "on_fit_start"):
            cb.on_fit_start(trainer, None)
    for epoch, metrics in enumerate(metrics_per_epoch, start=first_epoch):
        trainer.current_epoch = epoch
        trainer.global_step += steps_per_epoch
        trainer.callback_metrics = {k: torch.tensor(v) for k, v in metrics.items()}
        for cb in callbacks:
            cb.on_train_epoch_end(trainer, None)
        if trainer.should_stop:
            break


def ckpt_files(trainer) -> set[str]:
    directory = trainer.checkpoint_dir
    return (
        {os.path.join(directory, f) for f in os.listdir(directory)}
        if os.path.isdir(directory)
        else set()
    )


# ----------------------------------------------------------------------------- ModelCheckpoint
def test_top_k_keeps_exactly_the_best_files(tmp_path, removed):
    trainer = StandInTrainer(tmp_path)
    ckpt = ModelCheckpoint(
        monitor="val_acc",
        mode="max",
        save_top_k=2,
        filename="digits-best-{epoch:02d}-{val_acc:.2f}",
    )
    scores = [0.50, 0.80, 0.70, 0.90, 0.60]
    run_epochs(trainer, [ckpt], [{"val_acc": s, "val_loss": 1 - s} for s in scores])

    best = os.path.join(trainer.checkpoint_dir, "digits-best-epoch=03-val_acc=0.90.ckpt")
    second = os.path.join(trainer.checkpoint_dir, "digits-best-epoch=01-val_acc=0.80.ckpt")
    assert ckpt_files(trainer) == {best, second} == set(ckpt.best_k_models)
    assert ckpt.best_model_path == best
    assert ckpt.best_model_score == pytest.approx(0.9)
    assert ckpt.kth_best_model_path == second
    # Saved on epochs 0..3 (4 beat the kth), skipped epoch 4; removed what fell out.
    assert len(trainer.saved) == 4
    assert len(removed) == 2


def test_checkpoint_holds_the_state_after_its_own_save(tmp_path):
    trainer = StandInTrainer(tmp_path)
    ckpt = ModelCheckpoint(monitor="val_loss", filename="{epoch}")
    run_epochs(trainer, [ckpt], [{"val_loss": 1.0}, {"val_loss": 0.5}])
    loaded = torch.load(ckpt.best_model_path, weights_only=True)
    state = loaded["callbacks"][ckpt.state_key]
    assert state["best_model_path"] == ckpt.best_model_path
    assert state["best_model_score"] == pytest.approx(0.5)


def test_filename_rendering():
    ckpt = ModelCheckpoint(dirpath="ck", filename="mnist-best-{epoch:02d}-{val_acc:.2f}")
    metrics = {"epoch": 3, "val_acc": torch.tensor(0.9312)}
    assert ckpt.format_checkpoint_name(metrics) == os.path.join(
        "ck", "mnist-best-epoch=03-val_acc=0.93.ckpt"
    )
    plain = ModelCheckpoint(
        dirpath="ck", filename="{epoch:02d}-{val_acc:.2f}", auto_insert_metric_name=False
    )
    assert plain.format_checkpoint_name(metrics) == os.path.join("ck", "03-0.93.ckpt")
    default = ModelCheckpoint(dirpath="ck")
    assert default.format_checkpoint_name({"epoch": 2, "step": 40}) == os.path.join(
        "ck", "epoch=2-step=40.ckpt"
    )
    # A name that is a prefix of another, dotted/slashed names, a never-logged name -> 0.
    tricky = ModelCheckpoint(dirpath="", filename="{val}-{val_acc:.1f}-{a.b:.1f}-{missing}")
    rendered = tricky.format_checkpoint_name({"val": 1.0, "val_acc": 0.25, "a.b": 2.0})
    assert rendered == "val=1.0-val_acc=0.2-a.b=2.0-missing=0.ckpt"
    assert ckpt.format_checkpoint_name(metrics, ver=2).endswith("val_acc=0.93-v2.ckpt")


def test_missing_monitor_before_any_validation_warns_and_saves_nothing(tmp_path):
    """Lightning's rule: a run stopped (max_steps) before its first validation warns."""
    trainer = StandInTrainer(tmp_path)
    trainer.loop.last_val_batch = -1
    ckpt = ModelCheckpoint(monitor="val_acc")
    with pytest.warns(UserWarning, match="no validation has run yet"):
        run_epochs(trainer, [ckpt], [{"train_loss": 2.0}])
    assert trainer.saved == []


def test_missing_monitor_is_a_user_error(tmp_path):
    trainer = StandInTrainer(tmp_path)
    ckpt = ModelCheckpoint(monitor="val_acc")
    with pytest.raises(UserError) as info:
        run_epochs(trainer, [ckpt], [{"val_loss": 1.0, "train_loss": 2.0}])
    assert str(info.value) == (
        "ModelCheckpoint(monitor=\"val_acc\") found no metric 'val_acc'; logged metrics: "
        'train_loss, val_loss. Log it with self.log("val_acc", ...) in validation_step or change '
        "monitor."
    )
    assert trainer.saved == []


def test_without_monitor_keeps_latest_and_last(tmp_path):
    trainer = StandInTrainer(tmp_path)
    ckpt = ModelCheckpoint(save_last=True)
    run_epochs(trainer, [ckpt], [{"train_loss": 1.0}] * 3)
    latest = os.path.join(trainer.checkpoint_dir, "epoch=2-step=15.ckpt")
    last = os.path.join(trainer.checkpoint_dir, "last.ckpt")
    assert ckpt_files(trainer) == {latest, last}
    assert ckpt.best_model_path == latest and ckpt.last_model_path == last
    assert torch.load(last, weights_only=True)["global_step"] == 15


def test_save_top_k_minus_one_keeps_all_and_versions_clashing_names(tmp_path):
    trainer = StandInTrainer(tmp_path)
    ckpt = ModelCheckpoint(monitor="val_loss", save_top_k=-1, filename="best")
    run_epochs(trainer, [ckpt], [{"val_loss": v} for v in (3.0, 2.0, 1.0)])
    names = sorted(os.path.basename(p) for p in ckpt_files(trainer))
    assert names == ["best-v1.ckpt", "best-v2.ckpt", "best.ckpt"]
    assert os.path.basename(ckpt.best_model_path) == "best-v2.ckpt"


def test_constant_name_with_top_1_overwrites(tmp_path, removed):
    trainer = StandInTrainer(tmp_path)
    ckpt = ModelCheckpoint(monitor="val_loss", filename="best")
    run_epochs(trainer, [ckpt], [{"val_loss": v} for v in (3.0, 2.0, 2.5, 1.0)])
    assert [os.path.basename(p) for p in ckpt_files(trainer)] == ["best.ckpt"]
    assert removed == []  # overwritten in place, never deleted
    assert ckpt.best_model_score == pytest.approx(1.0)


def test_nan_never_displaces_a_real_score(tmp_path):
    trainer = StandInTrainer(tmp_path)
    ckpt = ModelCheckpoint(monitor="val_loss", filename="{epoch}")
    run_epochs(trainer, [ckpt], [{"val_loss": 1.0}, {"val_loss": math.nan}])
    assert os.path.basename(ckpt.best_model_path) == "epoch=0.ckpt"


def test_every_n_train_steps(tmp_path):
    trainer = StandInTrainer(tmp_path)
    ckpt = ModelCheckpoint(every_n_train_steps=2, save_top_k=-1, filename="{step}")
    ckpt.setup(trainer, None, "fit"), ckpt.on_fit_start(trainer, None)
    for step in range(1, 7):
        trainer.global_step = step
        ckpt.on_train_batch_end(trainer, None, None, None, step - 1)
    ckpt.on_train_epoch_end(trainer, None)  # same step as the last save: no duplicate
    assert [os.path.basename(p) for p, _ in trainer.saved] == [
        "step=2.ckpt",
        "step=4.ckpt",
        "step=6.ckpt",
    ]


def test_step_checkpoints_wait_for_the_monitored_metric(tmp_path, capsys):
    trainer = StandInTrainer(tmp_path)
    ckpt = ModelCheckpoint(every_n_train_steps=1, monitor="val_loss")
    ckpt.setup(trainer, None, "fit"), ckpt.on_fit_start(trainer, None)
    trainer.global_step = 1
    ckpt.on_train_batch_end(trainer, None, None, None, 0)
    assert trainer.saved == [] and "not logged yet" in capsys.readouterr().err
    trainer.global_step, trainer.callback_metrics = 2, {"val_loss": torch.tensor(0.3)}
    ckpt.on_train_batch_end(trainer, None, None, None, 1)
    assert len(trainer.saved) == 1


def test_skips_fast_dev_run_and_passes_weights_only(tmp_path):
    trainer = StandInTrainer(tmp_path)
    trainer.fast_dev_run = 1
    run_epochs(trainer, [ModelCheckpoint()], [{"loss": 1.0}])
    assert trainer.saved == []
    trainer = StandInTrainer(tmp_path / "w")
    run_epochs(trainer, [ModelCheckpoint(save_weights_only=True)], [{"loss": 1.0}])
    assert trainer.saved[0][1] is True


def test_resume_continues_the_ranking_and_cleans_old_files(tmp_path, removed):
    trainer = StandInTrainer(tmp_path)
    ckpt = ModelCheckpoint(monitor="val_acc", mode="max", filename="{epoch}")
    run_epochs(trainer, [ckpt], [{"val_acc": 0.5}, {"val_acc": 0.7}])
    state = torch.load(ckpt.best_model_path, weights_only=True)["callbacks"][ckpt.state_key]

    resumed = StandInTrainer(tmp_path)
    removed.clear()  # what the resumed run deletes
    fresh = ModelCheckpoint(monitor="val_acc", mode="max", filename="{epoch}")
    fresh.load_state_dict(state)
    resumed.global_step = 10
    # Epoch 2 scores worse than the restored best: nothing saved. Epoch 3 beats it.
    run_epochs(resumed, [fresh], [{"val_acc": 0.6}], first_epoch=2)
    assert resumed.saved == []
    run_epochs(resumed, [fresh], [{"val_acc": 0.9}], first_epoch=3)
    assert ckpt_files(resumed) == {os.path.join(resumed.checkpoint_dir, "epoch=3.ckpt")}
    assert removed == [ckpt.best_model_path]
    assert fresh.best_model_score == pytest.approx(0.9)


def test_resume_into_another_directory_leaves_old_files_alone(tmp_path, removed):
    trainer = StandInTrainer(tmp_path / "a")
    ckpt = ModelCheckpoint(monitor="val_loss", filename="{epoch}")
    run_epochs(trainer, [ckpt], [{"val_loss": 1.0}])
    other = StandInTrainer(tmp_path / "b")
    removed.clear()  # what the resumed run deletes
    fresh = ModelCheckpoint(monitor="val_loss", filename="{epoch}")
    fresh.load_state_dict(ckpt.state_dict())
    run_epochs(other, [fresh], [{"val_loss": 0.5}])
    assert os.path.exists(ckpt.best_model_path) and removed == []


def test_ranks_follow_rank_zero(tmp_path, removed):
    channel: list = []
    rank0, rank1 = StandInTrainer(tmp_path, 0, channel), StandInTrainer(tmp_path, 1, channel)
    cb0 = ModelCheckpoint(monitor="val_loss", filename="{epoch}")
    cb1 = ModelCheckpoint(monitor="val_loss", filename="{epoch}")
    for t, cb in ((rank0, cb0), (rank1, cb1)):
        cb.setup(t, None, "fit"), cb.on_fit_start(t, None)
    for epoch, (v0, v1) in enumerate([(1.0, 9.0), (0.5, 0.1), (0.7, 0.01)]):
        for t, cb, v in ((rank0, cb0, v0), (rank1, cb1, v1)):
            t.current_epoch, t.global_step = epoch, epoch + 1
            t.callback_metrics = {"val_loss": torch.tensor(v)}
            cb.on_train_epoch_end(t, None)
    # Rank 1 saw different (unsynced) values but follows rank 0's decisions.
    assert [p for p, _ in rank1.saved] == [p for p, _ in rank0.saved]
    assert cb1.best_model_path == cb0.best_model_path
    # One deletion in all (rank 1 deleting too would add a second): rank 0's.
    assert removed == [os.path.join(rank0.checkpoint_dir, "epoch=0.ckpt")]


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"mode": "maximum"}, "use one of: min, max"),
        ({"save_top_k": 3}, "needs a monitor"),
        ({"save_top_k": -2}, ">= -1"),
        ({"every_n_epochs": 2, "every_n_train_steps": 5}, "mutually exclusive"),
    ],
)
def test_bad_arguments_name_the_fix(kwargs, needle):
    with pytest.raises(UserError, match=re.escape(needle)):
        ModelCheckpoint(**kwargs)


# ----------------------------------------------------------------------------- EarlyStopping
def test_stops_after_patience_without_improvement(tmp_path, capsys):
    trainer = StandInTrainer(tmp_path)
    stop = EarlyStopping(monitor="val_loss", patience=3)
    run_epochs(trainer, [stop], [{"val_loss": v} for v in (1.0, 0.8, 0.81, 0.82, 0.83, 0.1)])
    assert trainer.should_stop and stop.stopped_epoch == 4
    assert stop.wait_count == 3 and stop.best_score == pytest.approx(0.8)
    assert "did not improve in the last 3 epochs" in capsys.readouterr().err


def test_min_delta_and_max_mode(tmp_path):
    trainer = StandInTrainer(tmp_path)
    stop = EarlyStopping(monitor="val_acc", mode="max", patience=2, min_delta=0.05)
    run_epochs(trainer, [stop], [{"val_acc": v} for v in (0.5, 0.54, 0.6, 0.62, 0.64)])
    # 0.54 and 0.62/0.64 are within min_delta of the best: they don't count as improvements.
    assert trainer.should_stop and stop.stopped_epoch == 4 and stop.best_score == pytest.approx(0.6)


def test_non_finite_stops_at_once(tmp_path):
    trainer = StandInTrainer(tmp_path)
    stop = EarlyStopping(monitor="val_loss", patience=10)
    run_epochs(trainer, [stop], [{"val_loss": 1.0}, {"val_loss": math.nan}, {"val_loss": 0.5}])
    assert trainer.should_stop and stop.stopped_epoch == 1
    assert "not finite" in stop.stopping_reason


def test_stopping_threshold(tmp_path):
    trainer = StandInTrainer(tmp_path)
    stop = EarlyStopping(monitor="val_acc", mode="max", stopping_threshold=0.95)
    run_epochs(trainer, [stop], [{"val_acc": v} for v in (0.9, 0.96, 0.97)])
    assert stop.stopped_epoch == 1 and "threshold" in stop.stopping_reason


def test_missing_metric_strict_and_lenient(tmp_path):
    with pytest.raises(UserError, match=r'EarlyStopping\(monitor="val_loss"\) found no metric'):
        run_epochs(StandInTrainer(tmp_path), [EarlyStopping("val_loss")], [{"train_loss": 1.0}])
    trainer = StandInTrainer(tmp_path)
    run_epochs(trainer, [EarlyStopping("val_loss", strict=False)], [{"train_loss": 1.0}] * 5)
    assert not trainer.should_stop
    # Every rank raises on its own: none is left waiting for rank 0's broadcast.
    rank1 = StandInTrainer(tmp_path, rank=1, channel=[])
    with pytest.raises(UserError):
        run_epochs(rank1, [EarlyStopping("val_loss")], [{"train_loss": 1.0}])


def test_early_stopping_state_round_trip(tmp_path):
    trainer = StandInTrainer(tmp_path)
    stop = EarlyStopping(monitor="val_loss", patience=3)
    ckpt = ModelCheckpoint(save_last=True)
    run_epochs(trainer, [stop, ckpt], [{"val_loss": v} for v in (1.0, 0.5, 0.6, 0.7)])
    saved = torch.load(ckpt.last_model_path, weights_only=True)["callbacks"][stop.state_key]
    resumed = EarlyStopping(monitor="val_loss", patience=3)
    resumed.load_state_dict(saved)
    assert (resumed.wait_count, resumed.best_score) == (2, pytest.approx(0.5))
    again = StandInTrainer(tmp_path / "again")
    run_epochs(again, [resumed], [{"val_loss": 0.8}])  # third epoch without improvement
    assert again.should_stop
    with pytest.raises(KeyError):
        resumed.load_state_dict({**saved, "bogus": 1})


def test_early_stopping_ranks_agree(tmp_path):
    channel: list = []
    rank0, rank1 = StandInTrainer(tmp_path, 0, channel), StandInTrainer(tmp_path, 1, channel)
    s0, s1 = EarlyStopping("val_loss", patience=1), EarlyStopping("val_loss", patience=1)
    for epoch, (v0, v1) in enumerate([(1.0, 1.0), (2.0, 0.1)]):
        for t, s, v in ((rank0, s0, v0), (rank1, s1, v1)):
            t.current_epoch, t.callback_metrics = epoch, {"val_loss": torch.tensor(v)}
            s.on_train_epoch_end(t, None)
    assert rank0.should_stop and rank1.should_stop and s1.best_score == s0.best_score == 1.0


# ----------------------------------------------------------------------------- LR monitor
def _adam_two_groups():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    return torch.optim.Adam(
        [{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.5}], lr=0.1
    )


def test_lr_names_follow_lightning():
    p = [torch.nn.Parameter(torch.zeros(1))]
    named = torch.optim.SGD([{"params": p, "name": "head"}], lr=0.1)
    opts = [_adam_two_groups(), torch.optim.Adam(p), torch.optim.SGD(p, lr=1.0), named]
    assert optimizer_names(opts) == [
        ["lr-Adam/pg1", "lr-Adam/pg2"],
        ["lr-Adam-1"],
        ["lr-SGD"],
        ["lr-SGD-1/head"],
    ]


def test_lr_monitor_logs_by_interval(tmp_path):
    trainer = StandInTrainer(tmp_path)
    trainer.log_every_n_steps = 2
    stepped = _adam_two_groups()
    by_epoch = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
    plain = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    step_sched = torch.optim.lr_scheduler.StepLR(stepped, step_size=1, gamma=0.5)
    epoch_sched = torch.optim.lr_scheduler.StepLR(by_epoch, step_size=1, gamma=0.1)
    trainer.optimizers = [stepped, by_epoch, plain]
    trainer.lr_scheduler_configs = [
        SimpleNamespace(scheduler=step_sched, interval="step", frequency=1, monitor=None),
        SimpleNamespace(scheduler=epoch_sched, interval="epoch", frequency=1, monitor=None),
    ]
    monitor = LearningRateMonitor(log_momentum=True)
    monitor.on_fit_start(trainer, None)
    monitor.on_train_epoch_start(trainer, None)
    assert trainer.logged == [
        (0, {"lr-SGD": 1.0, "lr-SGD-momentum": 0.9, "lr-SGD-1": 0.3, "lr-SGD-1-momentum": 0.0})
    ]
    trainer.logged.clear()
    for step in range(4):
        trainer.global_step = step
        for _ in range(2):  # two micro-batches per step: logged once
            monitor.on_train_batch_start(trainer, None, None, 0)
        stepped.step(), step_sched.step()
    steps = [(s, m["lr-Adam/pg1"], m["lr-Adam/pg2"]) for s, m in trainer.logged]
    assert steps == [(0, 0.1, 0.5), (2, 0.025, 0.125)]
    assert all("lr-SGD" not in m and m["lr-SGD-1"] == 0.3 for _, m in trainer.logged)
    assert trainer.logged[0][1]["lr-Adam/pg1-momentum"] == 0.9  # Adam's beta1


def test_lr_monitor_interval_epoch_and_no_logger(tmp_path, capsys):
    trainer = StandInTrainer(tmp_path)
    trainer.optimizers = [torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)]
    monitor = LearningRateMonitor(logging_interval="epoch")
    monitor.on_fit_start(trainer, None)
    monitor.on_train_batch_start(trainer, None, None, 0)
    monitor.on_train_epoch_start(trainer, None)
    assert trainer.logged == [(0, {"lr-SGD": 0.2})]
    trainer.loggers, trainer.logged = [], []
    monitor.on_fit_start(trainer, None)
    monitor.on_train_epoch_start(trainer, None)
    assert trainer.logged == [] and "no logger" in capsys.readouterr().err
    with pytest.raises(UserError, match="use one of"):
        LearningRateMonitor(logging_interval="batch")


# ----------------------------------------------------------------------------- ProgressBar
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "  # every plain (log file) line says when


def unstamped(line: str) -> str:
    assert re.match(STAMP, line), line
    return line[20:]


class CountingTrainer(StandInTrainer):
    """Counts reads of `progress_bar_metrics`: batches that don't print must not touch them."""

    reads = 0

    @property
    def progress_bar_metrics(self):
        self.reads += 1
        return {"train_loss": 0.2312}

    @progress_bar_metrics.setter
    def progress_bar_metrics(self, value):
        pass


def drive_epoch(bar, trainer, n_batches, n_val=0, epoch=0):
    trainer.current_epoch = epoch
    bar.on_train_epoch_start(trainer, None)
    for i in range(n_batches):
        bar.on_train_batch_end(trainer, None, None, None, i)
    if n_val:
        bar.on_validation_epoch_start(trainer, None)
        for i in range(n_val):
            bar.on_validation_batch_end(trainer, None, None, None, i)
        bar.on_validation_epoch_end(trainer, None)
    bar.on_train_epoch_end(trainer, None)


# These drive batches instantly: an unbounded rate keeps the per-second cap out of the way.
UNCAPPED = 1e12


def test_plain_lines_every_n_steps(tmp_path):
    out = io.StringIO()
    trainer = CountingTrainer(tmp_path)
    trainer.num_training_batches = 300
    bar = ProgressBar(refresh_rate_hz=UNCAPPED, stream=out)
    bar.setup(trainer, None, "fit")
    drive_epoch(bar, trainer, 300, n_val=5, epoch=2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 21  # 20 progress lines (every 15 batches) + 1 summary
    pattern = (
        STAMP + r"epoch 2 step 120/300 \(40%\) [\d.]+ it/s eta \d+:\d\d:\d\d train_loss=0.2312"
    )
    assert re.fullmatch(pattern, lines[7]), lines[7]
    assert re.fullmatch(
        STAMP + r"epoch 2 done in \d+:\d\d:\d\d: 300 batches [\d.]+ it/s train_loss=0.2312",
        lines[-1],
    )
    # Only printing batches read the metrics (20 lines + the summary).
    assert trainer.reads == 21


def test_plain_interval_option_unknown_total_and_cap(tmp_path):
    out = io.StringIO()
    trainer = CountingTrainer(tmp_path)
    trainer.num_training_batches = 1000  # 1000/20 = 50: capped at 50 anyway
    bar = ProgressBar(refresh_rate_hz=UNCAPPED, stream=out)
    bar.setup(trainer, None, "fit")
    drive_epoch(bar, trainer, 1000)
    assert len(out.getvalue().splitlines()) == 21
    out.truncate(0), out.seek(0)
    trainer.num_training_batches = math.inf
    bar = ProgressBar(plain_every_n_steps=40, refresh_rate_hz=UNCAPPED, stream=out)
    bar.setup(trainer, None, "fit")
    drive_epoch(bar, trainer, 100)
    lines = out.getvalue().splitlines()
    assert [unstamped(line).split(" it/s")[0].rsplit(" ", 1)[0] for line in lines[:2]] == [
        "epoch 0 step 40",
        "epoch 0 step 80",
    ]
    assert len(lines) == 3


class FakeClock:
    """`time.monotonic` for the progress module: each batch takes `step_s` seconds."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.reads = 0

    def monotonic(self) -> float:
        self.reads += 1
        return self.now


def drive_timed(bar, trainer, n_batches, step_s, clock):
    trainer.current_epoch = 0
    bar.on_train_epoch_start(trainer, None)
    for i in range(n_batches):
        clock.now += step_s
        bar.on_train_batch_end(trainer, None, None, None, i)
    bar.on_train_epoch_end(trainer, None)


@pytest.mark.parametrize(
    ("step_s", "progress_lines"),
    [
        (0.1, 20),  # a line every 15 batches = 1.5 s apart: under the 4/s cap, all print
        (0.001, 2),  # 15 ms apart: at most one per 0.25 s, so lines at 0.015 s and 0.27 s
    ],
)
def test_plain_lines_are_capped_per_second(tmp_path, monkeypatch, step_s, progress_lines):
    clock = FakeClock()
    monkeypatch.setattr(progress.time, "monotonic", clock.monotonic)
    out = io.StringIO()
    trainer = CountingTrainer(tmp_path)
    trainer.num_training_batches = 300
    bar = ProgressBar(stream=out)  # refresh_rate_hz=4
    bar.setup(trainer, None, "fit")
    drive_timed(bar, trainer, 300, step_s, clock)
    lines = out.getvalue().splitlines()
    assert len(lines) == progress_lines + 1  # + the epoch summary
    assert unstamped(lines[0]).startswith("epoch 0 step 15/300 ")
    # The clock is read on batches due by count (20) and for printed lines, not per batch (300).
    assert clock.reads <= 2 * 20 + 3


def test_only_rank_zero_speaks(tmp_path):
    out = io.StringIO()
    trainer = CountingTrainer(tmp_path, rank=1)
    bar = ProgressBar(stream=out)
    bar.setup(trainer, None, "fit")
    drive_epoch(bar, trainer, 50, n_val=3)
    assert out.getvalue() == "" and trainer.reads == 0


def test_validate_stage_prints_a_summary(tmp_path):
    out = io.StringIO()
    trainer = CountingTrainer(tmp_path)
    trainer.stage = "validate"
    bar = ProgressBar(stream=out)
    bar.setup(trainer, None, "validate")
    bar.on_validation_epoch_start(trainer, None)
    for i in range(4):
        bar.on_validation_batch_end(trainer, None, None, None, i)
    bar.on_validation_epoch_end(trainer, None)
    assert re.fullmatch(
        STAMP + r"validate done in 0:00:00: 4 batches train_loss=0.2312\n", out.getvalue()
    )


def test_live_bar_is_throttled(tmp_path):
    out = io.StringIO()
    trainer = CountingTrainer(tmp_path)
    trainer.num_training_batches = 200
    bar = ProgressBar(refresh_rate_hz=0.001, live=True, stream=out)  # one redraw per 1000 s
    bar.setup(trainer, None, "fit")
    drive_epoch(bar, trainer, 200, n_val=4)
    bar.on_fit_end(trainer, None)
    text = out.getvalue()
    assert "epoch 0" in text and "1/200" in text  # the first batch draws at once
    assert re.search(r"epoch 0 done in \d+:\d\d:\d\d: 200 batches", text)
    assert trainer.reads == 2  # the first redraw and the summary


def test_callbacks_are_plain_callbacks():
    for cb in (ModelCheckpoint(), EarlyStopping("x"), LearningRateMonitor(), ProgressBar()):
        assert isinstance(cb, Callback)
    assert ModelCheckpoint(monitor="a").state_key != ModelCheckpoint(monitor="b").state_key


_LIGHTNING_KEYS = """
import json
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

class Counter(Callback):
    def __init__(self, every):
        self.every = every

    @property
    def state_key(self):
        return self._generate_state_key(every=self.every)

print(json.dumps([
    ModelCheckpoint(monitor="val_loss", mode="max", every_n_train_steps=5).state_key,
    ModelCheckpoint().state_key,
    EarlyStopping(monitor="val_acc", mode="max").state_key,
    Counter(3).state_key,
    Callback().state_key,
]))
"""


@pytest.mark.slow
def test_state_keys_are_lightnings(lightning_python):
    import json
    import subprocess

    from launcher.callbacks import Callback as OurCallback

    class Counter(OurCallback):
        def __init__(self, every):
            self.every = every

        @property
        def state_key(self):
            return self._generate_state_key(every=self.every)

    done = subprocess.run([lightning_python, "-c", _LIGHTNING_KEYS], capture_output=True,
                          text=True, check=True, timeout=120)  # fmt: skip
    lightning = json.loads(done.stdout.strip().splitlines()[-1])
    ours = [
        ModelCheckpoint(monitor="val_loss", mode="max", every_n_train_steps=5).state_key,
        ModelCheckpoint().state_key,
        EarlyStopping(monitor="val_acc", mode="max").state_key,
        Counter(3).state_key,
        OurCallback().state_key,
    ]
    ours[3] = ours[3].rpartition(".")[2]  # a class local to this test: its qualname is longer
    assert ours == lightning
    assert ours[3] == "Counter{'every': 3}"


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_live_line_keeps_epoch_count_speed_and_eta_at_any_width(width):
    metrics = "train_loss=0.2312 train_acc=0.9311 val_loss=0.3078 val_acc=0.9331"
    line = progress.live_line("epoch 12", 120, 3000, ["35.1 it/s", "eta 0:01:25"], metrics, width)
    assert "epoch 12" in line and "120/3000 35.1 it/s eta 0:01:25" in line
    assert len(line) < width or width < len("epoch 12 120/3000 35.1 it/s eta 0:01:25") + 1
    shown = line.split("eta 0:01:25")[1].split()
    assert shown == metrics.split()[: len(shown)]  # whole name=value pairs, in order
    if width >= 120:
        assert "─" in line and "val_acc=0.9331" in line  # room for the bar and every metric
    if width == 80:
        assert "─" not in line and "train_loss=0.2312" in line  # the bar goes first


def test_an_epoch_resumed_mid_way_still_shows_progress_and_its_summary(tmp_path):
    """After a mid-epoch resume, on_train_epoch_start is not called again (Lightning's order),
    yet the epoch's remaining progress and its summary line must still be printed."""
    from launcher import Trainer
    from tests.resume_harness import SaveAt
    from tests.train.test_trainer import Regressor

    quiet = dict(logger=False, default_root_dir=str(tmp_path), enable_model_summary=False)
    mid = tmp_path / "mid.ckpt"
    Trainer(max_epochs=1, callbacks=[SaveAt(3, mid)], enable_progress_bar=False,
            **quiet).fit(Regressor())  # fmt: skip
    out = io.StringIO()
    bar = ProgressBar(refresh_rate_hz=UNCAPPED, plain_every_n_steps=1, live=False, stream=out)
    Trainer(max_epochs=1, callbacks=[bar], **quiet).fit(Regressor(), ckpt_path=str(mid))
    lines = [unstamped(line) for line in out.getvalue().splitlines()]
    train_lines = [line for line in lines if line.startswith("epoch 0")]
    assert train_lines[0].startswith("epoch 0 step 4/8 (50%)"), lines
    assert train_lines[-1].startswith("epoch 0 done in "), lines
    assert " 5 batches " in train_lines[-1]  # the batches this process ran
