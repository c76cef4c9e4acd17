"""Loop control, to Lightning 2.x's documented behaviour: val_check_interval (mid-epoch
validation), min/max epochs and steps, max_time, overfit_batches, reloading dataloaders,
benchmark, inference_mode and the simple profiler.

python -m pytest tests/train/test_loop_control.py -x -q
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module, Trainer
from launcher.callbacks import Callback, EarlyStopping, ModelCheckpoint, Timer
from launcher.errors import UserError
from launcher.loggers.base import Logger
from launcher.spec import LaunchSpec
from tests.resume_harness import (
    REPO,
    TINY,
    assert_bitwise_equal,
    final_state,
    kill_tree,
    launch_cli,
    newest_step,
    wait_for,
)

QUIET = dict(logger=False, enable_progress_bar=False, enable_model_summary=False,
             num_sanity_val_steps=0)  # fmt: skip


def data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, x.sum(1, keepdim=True))


class Net(Module):
    """40 training samples in batches of 4: 10 batches per epoch; 2 validation batches."""

    def __init__(self, n: int = 40, shuffle: bool = False, val_loss: float | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 1)
        self.n, self.shuffle, self.val_loss = n, shuffle, val_loss
        self.seen: list[torch.Tensor] = []  # first sample of every training batch
        self.modes: list[tuple[str, bool, bool]] = []  # (where, grad enabled, inference mode)
        self.loader_calls = {"train": 0, "val": 0}

    def training_step(self, batch, batch_idx):
        self.seen.append(batch[0][0].clone())
        self.modes.append(("train", self.training, torch.is_grad_enabled()))
        loss = F.mse_loss(self.net(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.modes.append(("val", self.training, torch.is_inference_mode_enabled()))
        value = F.mse_loss(self.net(batch[0]), batch[1]) if self.val_loss is None else self.val_loss
        self.log("val_loss", value)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        self.loader_calls["train"] += 1
        return DataLoader(data(self.n, 0), batch_size=4, shuffle=self.shuffle)

    def val_dataloader(self):
        self.loader_calls["val"] += 1
        return DataLoader(data(8, 1), batch_size=4)


class Record(Callback):
    """The hooks around validation inside fit, with the global step they ran at."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def _add(self, name: str, trainer) -> None:
        self.calls.append((name, trainer.global_step))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self._add("train_batch_end", trainer)

    def on_validation_start(self, trainer, module):
        self._add("validation_start", trainer)

    def on_validation_epoch_end(self, trainer, module):
        self._add("validation_epoch_end", trainer)

    def on_validation_end(self, trainer, module):
        self._add("validation_end", trainer)

    def on_train_epoch_end(self, trainer, module):
        self._add("train_epoch_end", trainer)

    def validations(self) -> list[int]:
        return [step for name, step in self.calls if name == "validation_start"]


class Steps(Logger):
    def __init__(self) -> None:
        self.logged: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics, step=None):
        self.logged.append((step, dict(metrics)))


def fit(model: Net | None = None, **kwargs) -> tuple[Trainer, Net, Record]:
    record = Record()
    model = model or Net()
    callbacks = [record, *kwargs.pop("callbacks", [])]
    trainer = Trainer(**{**QUIET, "callbacks": callbacks, **kwargs})
    trainer.fit(model)
    return trainer, model, record


# -- val_check_interval ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (dict(val_check_interval=0.25), [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]),
        (dict(val_check_interval=0.3), [3, 6, 9, 13, 16, 19]),  # int(10 * 0.3) = every 3
        (dict(val_check_interval=3), [3, 6, 9, 13, 16, 19]),
        (dict(val_check_interval=4, check_val_every_n_epoch=None), [4, 8, 12, 16, 20]),
        (dict(val_check_interval=15, check_val_every_n_epoch=None), [15]),
        (dict(val_check_interval=0.5, limit_train_batches=6), [3, 6, 9, 12]),
        (dict(), [10, 20]),
    ],
)
def test_validation_runs_at_lightnings_global_steps(tmp_path, settings, expected):
    _, _, record = fit(max_epochs=2, default_root_dir=tmp_path, **settings)
    assert record.validations() == expected


def test_mid_epoch_validation_runs_its_hooks_in_order_and_restores_train_mode(tmp_path):
    logger = Steps()
    trainer, model, record = fit(max_epochs=1, val_check_interval=0.5, default_root_dir=tmp_path,
                                 logger=logger, log_every_n_steps=1)  # fmt: skip
    around_first = record.calls[4:9]
    assert around_first == [("train_batch_end", 5), ("validation_start", 5),
                            ("validation_epoch_end", 5), ("validation_end", 5),
                            ("train_batch_end", 6)]  # fmt: skip
    # Training resumes in train mode with autograd; validation ran in eval mode.
    assert [m for m in model.modes if m[0] == "train"] == [("train", True, True)] * 10
    assert [m for m in model.modes if m[0] == "val"] == [("val", False, True)] * 4
    val_steps = [(step, m["epoch"]) for step, m in logger.logged if "val_loss" in m]
    assert val_steps == [(4, 0), (9, 0)]  # each validation logged once, at Lightning's step
    assert "val_loss" in trainer.callback_metrics


def test_an_int_interval_longer_than_the_epoch_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"val_check_interval \(11\).*check_val_every_n_epoch=None"):
        fit(max_epochs=1, val_check_interval=11, default_root_dir=tmp_path)
    # ... unless validation is off, as in Lightning
    fit(max_epochs=1, val_check_interval=11, limit_val_batches=0, default_root_dir=tmp_path)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(val_check_interval=0.5, check_val_every_n_epoch=None), "must be an int"),
        (dict(val_check_interval="00:00:10:00"), "Time-based"),
        (dict(val_check_interval=1.5), "fraction in"),
        (dict(val_check_interval=0), ">= 1"),
        (dict(check_val_every_n_epoch=0), "check_val_every_n_epoch"),
    ],
)
def test_invalid_validation_settings_are_user_errors(settings, message):
    with pytest.raises(UserError, match=message):
        Trainer(**QUIET, **settings)


def test_checkpoints_and_early_stopping_act_after_each_mid_epoch_validation(tmp_path):
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_loss", save_top_k=-1,
                           filename="{epoch}-{step}")  # fmt: skip
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    trainer, _, record = fit(Net(val_loss=1.0), max_epochs=3, val_check_interval=0.25,
                             callbacks=[ckpt, stopper], default_root_dir=tmp_path)  # fmt: skip
    # Checked on_validation_end: improved at step 2, no improvement at 4 and 6 -> stop at 6,
    # mid-epoch; the epoch still ends (its hooks run), as in Lightning.
    assert record.validations() == [2, 4, 6]
    assert trainer.global_step == 6 and trainer.current_epoch == 1 and trainer.should_stop
    assert ("train_epoch_end", 6) in record.calls
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "epoch=0-step=2.ckpt", "epoch=0-step=4.ckpt", "epoch=0-step=6.ckpt"]  # fmt: skip


# -- epochs and steps ----------------------------------------------------------------------
def test_min_epochs_holds_off_early_stopping(tmp_path):
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    trainer, _, record = fit(Net(val_loss=1.0), max_epochs=6, min_epochs=4, callbacks=[stopper],
                             default_root_dir=tmp_path)  # fmt: skip
    # Asked to stop after epochs 1, 2 and 3 (stopped_epoch is the last ask, as in Lightning);
    # the stop happens once 4 epochs are done.
    assert stopper.stopped_epoch == 3 and stopper.wait_count == 3
    assert trainer.current_epoch == 4 and trainer.global_step == 40


def test_min_steps_holds_off_a_stop_then_validates_and_stops_mid_epoch(tmp_path):
    class StopAtOnce(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            trainer.should_stop = True

    trainer, _, record = fit(max_epochs=5, min_steps=13, callbacks=[StopAtOnce()],
                             default_root_dir=tmp_path)  # fmt: skip
    # Lightning: should_stop waits for min_steps; at step 13 it validates, then stops.
    assert trainer.global_step == 13 and record.validations() == [10, 13]


def test_max_epochs_minus_one_means_no_epoch_limit(tmp_path):
    trainer, _, _ = fit(max_epochs=-1, max_steps=35, default_root_dir=tmp_path)
    assert trainer.max_epochs == -1 and trainer.global_step == 35 and trainer.current_epoch == 4
    assert Trainer(**QUIET, max_steps=5).max_epochs == -1  # Lightning: steps set, epochs off


def test_max_epochs_zero_trains_nothing_but_runs_the_fit_hooks(tmp_path):
    class Hooks(Callback):
        def __init__(self):
            self.names = []

    for name in ("on_fit_start", "on_train_start", "on_train_epoch_start", "on_train_end",
                 "on_fit_end"):  # fmt: skip
        setattr(Hooks, name, lambda self, trainer, module, n=name: self.names.append(n))
    hooks = Hooks()
    trainer, model, _ = fit(max_epochs=0, callbacks=[hooks], default_root_dir=tmp_path)
    assert trainer.global_step == 0 and model.seen == []
    # Lightning: on_fit_start and on_fit_end, but no training hooks at all.
    assert hooks.names == ["on_fit_start", "on_fit_end"]


def test_negative_epoch_limits_are_user_errors():
    with pytest.raises(UserError, match="max_epochs must be -1"):
        Trainer(**QUIET, max_epochs=-2)
    with pytest.raises(UserError, match="min_steps"):
        Trainer(**QUIET, min_steps=-1)


def test_unset_limits_warn_when_fit_starts_and_default_to_1000_epochs(tmp_path):
    trainer = Trainer(
        **QUIET, default_root_dir=tmp_path, limit_train_batches=1, max_time="00:00:00:01"
    )
    assert trainer.max_epochs == -1  # a max_time bounds the run: no default, no warning
    from launcher.callbacks import LambdaCallback

    stop = LambdaCallback(on_train_epoch_end=lambda t, m: setattr(t, "should_stop", True))
    trainer = Trainer(**QUIET, default_root_dir=tmp_path, limit_train_batches=1, callbacks=[stop])
    assert trainer.max_epochs == 1000
    with pytest.warns(UserWarning, match="max_epochs was not set"):  # said as fit starts
        trainer.fit(Net(), ckpt_path=None)  # (stopped after an epoch, not 1000 of them)
    assert trainer.current_epoch == 1 and trainer.max_epochs == 1000


# -- max_time ------------------------------------------------------------------------------
class Slow(Net):
    def training_step(self, batch, batch_idx):
        time.sleep(0.05)
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize("max_time", ["00:00:00:01", {"seconds": 1}])
def test_max_time_stops_after_the_time_is_spent(tmp_path, max_time):
    started = time.monotonic()
    trainer, _, _ = fit(Slow(), max_time=max_time, default_root_dir=tmp_path)
    assert trainer.max_epochs == -1  # Lightning: the timer bounds the run
    assert 1.0 <= time.monotonic() - started < 4.0
    assert 10 <= trainer.global_step < 40 and trainer.should_stop


def test_max_time_counts_the_time_before_a_resume(tmp_path):
    """The Timer's elapsed training time is in the checkpoint: a resume spends only the rest."""
    path = tmp_path / "at10.ckpt"
    first = Trainer(**QUIET, max_time={"seconds": 1.5}, max_steps=10,
                    callbacks=[SaveAtStep(10, path)], run_dir=str(tmp_path / "r"))  # fmt: skip
    first.fit(Slow())  # 10 steps at >= 0.05 s: about 0.5 s of the 1.5 s spent
    spent = torch.load(path, weights_only=True)["callbacks"]["Timer"]["time_elapsed"]["train"]
    assert 0.5 <= spent < 1.5
    resumed = Trainer(**QUIET, max_time={"seconds": 1.5}, max_steps=1000,
                      run_dir=str(tmp_path / "r2"))  # fmt: skip
    resumed.fit(Slow(), ckpt_path=str(path))
    steps_after = resumed.global_step - 10
    timer = next(c for c in resumed.callbacks if isinstance(c, Timer))
    assert timer.time_elapsed() >= 1.5
    # only the remaining ~1 s was trained (~20 steps at 0.05 s), not another 1.5 s (~30)
    assert 0 < steps_after < (1.5 - spent) / 0.05 + 5


def test_bad_max_time_is_a_user_error():
    with pytest.raises(UserError, match="DD:HH:MM:SS"):
        Trainer(**QUIET, max_time="10 minutes")


# -- data ---------------------------------------------------------------------------------
def test_overfit_batches_uses_the_same_batches_without_shuffling(tmp_path):
    with pytest.warns(UserWarning, match="turning off the train dataloader shuffling"):
        trainer, model, record = fit(Net(shuffle=True), max_epochs=3, overfit_batches=2,
                                     default_root_dir=tmp_path)  # fmt: skip
    assert trainer.num_training_batches == 2 and trainer.num_val_batches == 2
    first = data(40, 0).tensors[0]
    assert all(torch.equal(s, first[i % 2 * 4]) for i, s in enumerate(model.seen))
    assert len(model.seen) == 6 and record.validations() == [2, 4, 6]


def test_reload_dataloaders_every_n_epochs(tmp_path):
    _, model, _ = fit(max_epochs=5, reload_dataloaders_every_n_epochs=2, default_root_dir=tmp_path)
    # Lightning: loaded at epoch 0, reloaded at epochs 2 and 4 (train and val alike).
    assert model.loader_calls == {"train": 3, "val": 3}
    _, model, _ = fit(max_epochs=5, default_root_dir=tmp_path / "no_reload")
    assert model.loader_calls == {"train": 1, "val": 1}


def test_reload_dataloaders_rejects_negative_values():
    with pytest.raises(UserError, match="reload_dataloaders_every_n_epochs"):
        Trainer(**QUIET, reload_dataloaders_every_n_epochs=-1)


# -- torch settings ------------------------------------------------------------------------
def test_benchmark_sets_cudnn_benchmark():
    before = torch.backends.cudnn.benchmark
    try:
        Trainer(**QUIET, benchmark=True)
        assert torch.backends.cudnn.benchmark is True
        Trainer(**QUIET, benchmark=False)
        assert torch.backends.cudnn.benchmark is False
        torch.backends.cudnn.benchmark = True
        Trainer(**QUIET)  # None keeps the session's value ...
        assert torch.backends.cudnn.benchmark is True
        Trainer(**QUIET, deterministic=True)  # ... except under deterministic
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = before


@pytest.mark.parametrize("inference_mode", [True, False])
def test_inference_mode_or_no_grad_for_evaluation(tmp_path, inference_mode):
    model = Net()
    trainer = Trainer(**QUIET, max_epochs=1, inference_mode=inference_mode,
                      default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model)
    trainer.validate(model)
    # ("val", training, inference mode enabled): no_grad is grad-free but not inference mode
    assert {m for m in model.modes if m[0] == "val"} == {("val", False, inference_mode)}


# -- profiler ------------------------------------------------------------------------------
def test_simple_profiler_reports_the_main_actions(tmp_path, capsys):
    trainer, _, _ = fit(max_epochs=2, val_check_interval=0.5, profiler="simple",
                        run_dir=str(tmp_path / "run"))  # fmt: skip
    printed = capsys.readouterr().out
    report = (tmp_path / "run" / "fit-profiler.txt").read_text()
    assert "FIT Profiler Report" in printed and report.strip() in printed
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip()
            for line in report.splitlines() if line.startswith("|  ")}  # fmt: skip
    assert rows["run_training_epoch"] == "2" and rows["run_validation"] == "4"
    assert rows["[LightningModule]Net.training_step"] == "20" and rows["optimizer_step"] == "20"


def test_unknown_profiler_names_simple():
    with pytest.raises(UserError, match="profiler='simple'"):
        Trainer(**QUIET, profiler="advanced")


# -- exact resume between two mid-epoch validations -------------------------------------------
class SaveAtStep(Callback):
    def __init__(self, at: int, path: Path) -> None:
        self.at, self.path = at, path

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.at:
            trainer.save_checkpoint(str(self.path))


def test_resume_between_mid_epoch_validations_is_exact(tmp_path):
    """Saved at step 13 (between the validations at 12 and 14): the resumed run validates at
    the same steps and ends bit-identical to an uninterrupted one."""
    path = tmp_path / "mid.ckpt"
    settings = dict(max_epochs=2, val_check_interval=0.25, seed=3)
    ref_trainer, reference, ref_record = fit(
        Net(shuffle=True), callbacks=[SaveAtStep(13, path)], run_dir=str(tmp_path / "a"),
        **settings,
    )  # fmt: skip
    resumed, record = Net(shuffle=True), Record()
    trainer = Trainer(**{**QUIET, "callbacks": [record], "run_dir": str(tmp_path / "b")},
                      **settings)  # fmt: skip
    trainer.fit(resumed, ckpt_path=str(path))
    assert ref_record.validations() == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert record.validations() == [14, 16, 18, 20]
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert trainer.global_step == ref_trainer.global_step == 20
    assert trainer.loop.last_val_batch == trainer.loop.total_batch_idx == 20


# -- end to end: launch --devices 2, killed between two mid-epoch validations, --resume --------
@pytest.mark.slow
def test_launch_killed_between_mid_epoch_validations_resumes_exactly(tmp_path):
    from mlflow.tracking import MlflowClient

    # 320 samples, 2 processes, batches of 8: 20 steps per epoch, validation every 5.
    args = [TINY, "--accelerator", "cpu", "--devices", "2", "--max-epochs", "2", "--seed", "1",
            "--set", "n_train=320", "--set", "step_sleep=0.05", "--set", "dropout=0.0",
            "--set", "trainer.val_check_interval=0.25",
            "--set", "trainer.checkpoint_every_n_steps=2"]  # fmt: skip
    done = launch_cli(tmp_path, *args, "--name", "whole")
    assert done.returncode == 0, done.stderr[-3000:]

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = [sys.executable, "-m", "launcher.cli.app", *args, "--name", "killed",
               "--output-dir", str(tmp_path / "out")]  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, env={**env, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    spec_path = tmp_path / "out" / "tiny" / "killed" / "launch.json"
    assert wait_for(spec_path.exists, 120)
    spec = LaunchSpec.read(str(spec_path))
    # Kill the whole job once it has checkpointed step 6 or 8: after the validation at step
    # 5, before the one at step 10.
    assert wait_for(lambda: newest_step(spec) >= 6 or proc.poll() is not None, 300)
    killed_at = newest_step(spec)
    kill_tree(proc)
    assert killed_at in (6, 8), f"killed after step {killed_at}"
    done = launch_cli(tmp_path, *args, "--name", "killed", "--resume", "auto")
    assert done.returncode == 0, done.stderr[-3000:]

    whole = final_state(LaunchSpec.read(str(tmp_path / "out" / "tiny" / "whole" / "launch.json")))
    killed = final_state(spec)
    assert_bitwise_equal(whole["state_dict"], killed["state_dict"], "model")
    assert_bitwise_equal(whole["optimizer_states"], killed["optimizer_states"], "optimizers")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id],
                              filter_string="attributes.run_name = 'killed'")  # fmt: skip
    assert len(runs) == 1  # the resume continued the same MLflow run
    for key, expected in [("val_loss", list(range(4, 40, 5))), ("train_loss", list(range(40)))]:
        steps = sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, key))
        assert steps == expected, f"{key}: duplicated or missing steps {steps}"
