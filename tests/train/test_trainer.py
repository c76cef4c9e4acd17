"""The Trainer's loop features, each proved numerically on tiny CPU models.

    python -m pytest tests/test_trainer.py -q

Precision, optimizer/scheduler parsing, `self.log` bookkeeping and the Module API have their
own files (test_precision.py, test_optim.py, test_results.py, test_module.py).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import DataModule, Module, Trainer
from launcher.callbacks import Callback, EarlyStopping, ModelCheckpoint
from launcher.errors import UserError

QUIET = dict(logger=False, enable_progress_bar=False)
SANITY = 2  # Lightning's default num_sanity_val_steps: validation batches before training


def regression_data(n: int = 64, dim: int = 4, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = x @ torch.arange(1.0, dim + 1) + 0.1 * torch.randn(n, generator=g)
    return TensorDataset(x, y)


class Regressor(Module):
    """A linear regression; counts its step calls and can script its validation metrics."""

    def __init__(self, batch_size: int = 8, n: int = 64, lr: float = 0.1,
                 val_script: dict[str, list[float]] | None = None) -> None:  # fmt: skip
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 1)
        self.batch_size, self.n, self.lr = batch_size, n, lr
        self.val_script = val_script or {}
        self.train_calls = self.val_calls = self.test_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        self.train_calls += 1
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.val_calls += 1
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))
        for name, values in self.val_script.items():
            self.log(name, values[self.current_epoch])

    def test_step(self, batch, batch_idx):
        self.test_calls += 1
        x, y = batch
        self.log("test_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        return DataLoader(regression_data(self.n), batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self):
        return DataLoader(regression_data(self.n, seed=1), batch_size=self.batch_size)

    def test_dataloader(self):
        return DataLoader(regression_data(16, seed=2), batch_size=4)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- accumulation --------------------------------------------------------------------------
def test_accumulating_4_batches_of_8_equals_one_batch_of_32(tmp_path):
    accumulated, whole = Regressor(batch_size=8), Regressor(batch_size=32)
    assert torch.equal(accumulated.net.weight, whole.net.weight)
    Trainer(max_epochs=2, accumulate_grad_batches=4, default_root_dir=tmp_path / "a", **QUIET).fit(
        accumulated
    )
    trainer = Trainer(max_epochs=2, default_root_dir=tmp_path / "b", **QUIET)
    trainer.fit(whole)
    for a, b in zip(accumulated.parameters(), whole.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert accumulated.train_calls == 16 and whole.train_calls == 4
    assert trainer.global_step == 4
    # Training did move the weights, so the comparison above is not trivially true.
    assert not torch.allclose(whole.net.weight, Regressor().net.weight)


# -- early stopping ------------------------------------------------------------------------
def test_early_stopping_stops_at_the_expected_epoch(tmp_path):
    script = {"val_loss": [5, 4, 3, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1]}
    model = Regressor(val_script=script)
    stopper = EarlyStopping(monitor="val_loss", patience=3)
    trainer = Trainer(max_epochs=10, callbacks=[stopper], default_root_dir=tmp_path, **QUIET)
    trainer.fit(model)
    # Best 3 at epoch 2; epochs 3, 4, 5 do not improve -> stop after epoch 5.
    assert stopper.stopped_epoch == 5
    assert trainer.current_epoch == 6  # epochs completed, as in Lightning
    assert model.val_calls == 6 * 8 + SANITY
    assert stopper.best_score == 3


def test_monitoring_a_metric_never_logged_lists_the_logged_ones(tmp_path):
    for callback in (EarlyStopping(monitor="val_los"), ModelCheckpoint(monitor="val_los")):
        trainer = Trainer(max_epochs=2, callbacks=[callback], default_root_dir=tmp_path, **QUIET)
        with pytest.raises(UserError) as err:
            trainer.fit(Regressor())
        message = str(err.value)
        assert "val_los" in message and "val_mse" in message and "train_loss" in message


# -- ModelCheckpoint -----------------------------------------------------------------------
def test_model_checkpoint_keeps_exactly_the_top_k_with_templated_names(tmp_path):
    script = {"val_acc": [0.5, 0.7, 0.6, 0.9, 0.8]}
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_acc", mode="max", save_top_k=2,
                           filename="m-{epoch:02d}-{val_acc:.2f}", save_last=True)  # fmt: skip
    trainer = Trainer(max_epochs=5, callbacks=[ckpt], default_root_dir=tmp_path, **QUIET)
    trainer.fit(Regressor(val_script=script))
    names = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert names == ["last.ckpt", "m-epoch=03-val_acc=0.90.ckpt", "m-epoch=04-val_acc=0.80.ckpt"]
    assert ckpt.best_model_path.endswith("m-epoch=03-val_acc=0.90.ckpt")
    assert ckpt.best_model_score == pytest.approx(0.9)
    # last.ckpt holds the final weights; the best file holds epoch 3's.
    last = torch.load(tmp_path / "ck" / "last.ckpt", weights_only=True)
    best = torch.load(ckpt.best_model_path, weights_only=True)
    assert last["global_step"] == 40 and best["global_step"] == 32
    final = trainer.module.state_dict()
    assert all(torch.equal(last["state_dict"][k], v) for k, v in final.items())


# -- batch limits and fast_dev_run ------------------------------------------------------------
@pytest.mark.parametrize(
    ("limit_train", "limit_val", "train_per_epoch", "val_per_epoch"),
    [(3, 2, 3, 2), (0.5, 0.25, 4, 2), (None, None, 8, 8)],
)
def test_limit_batches(tmp_path, limit_train, limit_val, train_per_epoch, val_per_epoch):
    model = Regressor()
    trainer = Trainer(max_epochs=2, limit_train_batches=limit_train, limit_val_batches=limit_val,
                      default_root_dir=tmp_path, **QUIET)  # fmt: skip
    trainer.fit(model)
    assert model.train_calls == 2 * train_per_epoch
    assert model.val_calls == 2 * val_per_epoch + SANITY
    assert trainer.global_step == 2 * train_per_epoch


@pytest.mark.parametrize(("fast_dev_run", "batches"), [(True, 1), (3, 3)])
def test_fast_dev_run_runs_n_batches_and_leaves_no_files(
    tmp_path, monkeypatch, fast_dev_run, batches
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    model = Regressor()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_mse", save_last=True)
    trainer = Trainer(max_epochs=5, fast_dev_run=fast_dev_run, logger=True, callbacks=[ckpt],
                      enable_progress_bar=False, default_root_dir=tmp_path / "out")  # fmt: skip
    trainer.fit(model)
    assert (model.train_calls, model.val_calls) == (batches, batches)
    assert trainer.current_epoch == 1 and trainer.global_step == batches
    assert trainer.loggers == []
    assert files_under(tmp_path) == []  # no checkpoint, no logger output
    assert not (tmp_path / "out").exists()  # not even an empty run directory


# -- DataModule and explicit dataloaders ---------------------------------------------------------
class RegressionData(DataModule):
    def __init__(self) -> None:
        super().__init__()
        self.prepared = 0
        self.stages: list[str] = []

    def prepare_data(self) -> None:
        self.prepared += 1

    def setup(self, stage: str) -> None:
        self.stages.append(stage)
        self.train_set, self.val_set = regression_data(32), regression_data(12, seed=1)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=8)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=4)

    def test_dataloader(self):
        return DataLoader(regression_data(10, seed=2), batch_size=5)


def test_fit_validate_test_with_a_datamodule(tmp_path):
    data, model = RegressionData(), Regressor()
    trainer = Trainer(max_epochs=2, default_root_dir=tmp_path, **QUIET)
    trainer.fit(model, datamodule=data)
    assert data.prepared == 1 and data.stages == ["fit"]
    assert model.train_calls == 2 * 4 and model.val_calls == 2 * 3 + SANITY  # the datamodule's
    assert data.trainer is trainer

    results = trainer.validate(model, datamodule=data)
    x, y = data.val_set.tensors
    with torch.no_grad():
        expected = F.mse_loss(model(x), y).item()  # batches of 4 of 12: the plain mean
    assert list(results[0]) == ["val_mse"]
    assert results[0]["val_mse"] == pytest.approx(expected, rel=1e-5)

    test_results = trainer.test(model, datamodule=data)
    x, y = regression_data(10, seed=2).tensors
    with torch.no_grad():
        expected = F.mse_loss(model(x), y).item()
    assert test_results == [{"test_mse": pytest.approx(expected, rel=1e-5)}]
    assert model.test_calls == 2
    assert data.stages == ["fit", "validate", "test"]


def test_fit_with_explicit_dataloaders(tmp_path):
    model = Regressor()
    train = DataLoader(regression_data(24), batch_size=8)
    val = DataLoader(regression_data(10, seed=1), batch_size=5)
    trainer = Trainer(max_epochs=2, default_root_dir=tmp_path, **QUIET)
    trainer.fit(model, train_dataloaders=train, val_dataloaders=val)
    assert (model.train_calls, model.val_calls) == (2 * 3, 2 * 2 + SANITY)
    assert trainer.num_training_batches == 3 and trainer.num_val_batches == 2
    assert (
        trainer.test(model, dataloaders=DataLoader(regression_data(8), batch_size=8))[0]["test_mse"]
        > 0
    )


# -- what steps can read -----------------------------------------------------------------------
class Introspective(Regressor):
    def __init__(self) -> None:
        super().__init__(n=24)
        self.seen: list[tuple] = []

    def training_step(self, batch, batch_idx):
        trainer = self.trainer
        self.seen.append((trainer, self.device, self.global_rank, self.current_epoch,
                          self.global_step, trainer.is_global_zero, batch_idx))  # fmt: skip
        return super().training_step(batch, batch_idx)


def test_properties_inside_steps(tmp_path):
    model = Introspective()
    trainer = Trainer(max_epochs=2, default_root_dir=tmp_path, **QUIET)
    trainer.fit(model)
    expected = [(trainer, torch.device("cpu"), 0, epoch, 3 * epoch + i, True, i)
                for epoch in range(2) for i in range(3)]  # fmt: skip
    assert model.seen == expected
    assert trainer.is_global_zero and trainer.global_rank == 0
    assert set(trainer.callback_metrics) >= {"train_loss", "val_mse"}
    assert all(isinstance(v, torch.Tensor) for v in trainer.callback_metrics.values())


# -- gradient clipping --------------------------------------------------------------------------
class UpdateRecorder(Callback):
    """Records every optimizer step's parameter update (after - before)."""

    def __init__(self) -> None:
        self.updates: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._before = torch.cat([p.detach().flatten().clone() for p in module.parameters()])

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        after = torch.cat([p.detach().flatten() for p in module.parameters()])
        self.updates.append(after - self._before)


class BigGradients(Regressor):
    def training_step(self, batch, batch_idx):
        return 1000 * super().training_step(batch, batch_idx)


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradient_clipping_bounds_the_update(tmp_path, algorithm):
    # SGD with lr=1: the update is exactly minus the (clipped) gradient.
    unclipped, clipped = UpdateRecorder(), UpdateRecorder()
    Trainer(max_epochs=1, callbacks=[unclipped], default_root_dir=tmp_path / "a", **QUIET).fit(
        BigGradients(lr=1.0, n=16)
    )
    Trainer(max_epochs=1, callbacks=[clipped], gradient_clip_val=0.5,
            gradient_clip_algorithm=algorithm, default_root_dir=tmp_path / "b",
            **QUIET).fit(BigGradients(lr=1.0, n=16))  # fmt: skip
    first_free, first_clipped = unclipped.updates[0], clipped.updates[0]
    assert first_free.norm() > 10  # big enough that clipping must act
    if algorithm == "norm":
        for update in clipped.updates:
            assert update.norm().item() == pytest.approx(0.5, rel=1e-4)
        # Norm clipping rescales: same direction as the unclipped gradient.
        torch.testing.assert_close(first_clipped, first_free * 0.5 / first_free.norm(),
                                   rtol=1e-4, atol=1e-6)  # fmt: skip
    else:
        for update in clipped.updates:
            assert update.abs().max().item() == pytest.approx(0.5, rel=1e-6)
        torch.testing.assert_close(first_clipped, first_free.clamp(-0.5, 0.5))


# -- validation cadence -------------------------------------------------------------------------
def test_check_val_every_n_epoch(tmp_path):
    model = Regressor(n=16)
    Trainer(max_epochs=4, check_val_every_n_epoch=2, default_root_dir=tmp_path, **QUIET).fit(model)
    assert model.val_calls == 2 * 2 + SANITY  # after epochs 1 and 3 only


def test_max_steps_stops_mid_epoch(tmp_path):
    model = Regressor()
    trainer = Trainer(max_steps=5, default_root_dir=tmp_path, **QUIET)
    trainer.fit(model)
    assert trainer.global_step == 5 and model.train_calls == 5


def test_resume_checkpoints_land_in_the_run_dir(tmp_path):
    trainer = Trainer(max_epochs=2, default_root_dir=tmp_path, **QUIET)
    trainer.fit(copy.deepcopy(Regressor(n=16)))
    saved = [f for f in files_under(tmp_path) if f.endswith(".ckpt")]
    resume = [f for f in saved if re.match(r".+/checkpoints/resume/", f)]
    # Besides them, only Lightning's default ModelCheckpoint file, next to them.
    others = [f for f in saved if f not in resume]
    assert (
        resume and len(others) == 1 and re.match(r".+/checkpoints/epoch=1-step=4.ckpt", others[0])
    )


def test_monitored_callbacks_wait_for_validation_epochs(tmp_path):
    # With check_val_every_n_epoch=2, val metrics exist only after epochs 1 and 3. As in
    # Lightning, the callbacks act when validation ran, not on the epochs in between.
    script = {"val_loss": [9.0, 4.0, 9.0, 5.0]}
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_loss", save_top_k=-1,
                           filename="{epoch}")  # fmt: skip
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    trainer = Trainer(max_epochs=4, check_val_every_n_epoch=2, callbacks=[ckpt, stopper],
                      default_root_dir=tmp_path, **QUIET)  # fmt: skip
    trainer.fit(Regressor(n=16, val_script=script))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["epoch=1.ckpt", "epoch=3.ckpt"]
    # One non-improving validation (5 > 4) with patience 1 stops after epoch 3, not earlier.
    assert stopper.stopped_epoch == 3 and trainer.current_epoch == 4


def test_max_steps_counts_optimizer_steps_under_accumulation(tmp_path):
    model = Regressor()
    trainer = Trainer(max_steps=3, accumulate_grad_batches=2, default_root_dir=tmp_path, **QUIET)
    trainer.fit(model)
    assert trainer.global_step == 3 and model.train_calls == 6


def test_seed_makes_shuffled_runs_repeatable(tmp_path):
    class Shuffled(Regressor):
        def train_dataloader(self):
            return DataLoader(regression_data(self.n), batch_size=self.batch_size, shuffle=True)

    def final_weights(seed: int, run: str) -> torch.Tensor:
        model = Shuffled(n=32, lr=0.05)
        Trainer(max_epochs=2, seed=seed, default_root_dir=tmp_path / run, **QUIET).fit(model)
        return model.net.weight.detach().clone()

    assert torch.equal(final_weights(7, "a"), final_weights(7, "b"))
    assert not torch.equal(final_weights(7, "c"), final_weights(8, "d"))


def test_training_step_may_return_a_dict(tmp_path):
    class DictLoss(Regressor):
        def training_step(self, batch, batch_idx):
            return {"loss": super().training_step(batch, batch_idx), "extra": 1}

    outputs = []

    class Outputs(Callback):
        def on_train_batch_end(self, trainer, module, out, batch, batch_idx):
            outputs.append(out)

    model = DictLoss(n=16)
    before = model.net.weight.detach().clone()
    Trainer(max_epochs=1, callbacks=[Outputs()], default_root_dir=tmp_path, **QUIET).fit(model)
    assert not torch.equal(before, model.net.weight)
    assert [o["extra"] for o in outputs] == [1, 1]


def test_validate_without_fit(tmp_path):
    model = Regressor(n=12, batch_size=5)
    (metrics,) = Trainer(default_root_dir=tmp_path, **QUIET).validate(model)
    x, y = regression_data(12, seed=1).tensors
    with torch.no_grad():
        assert metrics["val_mse"] == pytest.approx(F.mse_loss(model(x), y).item(), rel=1e-5)
    assert model.val_calls == 3


# -- progress bar in validate/test ---------------------------------------------------------------
@pytest.mark.parametrize("stage", ["validate", "test"])
def test_progress_bar_knows_the_eval_batch_count(tmp_path, stage):
    """The bar read `trainer.num_test_batches`, which nothing set: tests showed no total."""
    import io

    from launcher.callbacks import ProgressBar

    out = io.StringIO()
    bar = ProgressBar(live=True, stream=out)
    trainer = Trainer(logger=False, callbacks=[bar], default_root_dir=tmp_path, max_epochs=1)
    trainer.fit(Regressor(), train_dataloaders=DataLoader(regression_data(8), batch_size=8))
    out.truncate(0), out.seek(0)
    getattr(trainer, stage)(Regressor(), ckpt_path=None)
    expected = 8 if stage == "validate" else 4  # 64 samples / 8, 16 samples / 4
    assert getattr(trainer, f"num_{'val' if stage == 'validate' else 'test'}_batches") == expected
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # without terminal codes
    assert f"0/{expected}" in shown and "/?" not in shown  # the bar's total: a known count


def test_trainer_argument_types_resolve_at_runtime():
    """`--set trainer.devices=2` is typed from these hints; one unresolvable name loses them all."""
    import typing

    hints = typing.get_type_hints(Trainer.__init__)
    assert hints["devices"] == int | str and hints["max_epochs"] == int | None


# -- Lightning's read-only trainer properties --------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(max_epochs=2, accumulate_grad_batches=3), 6),  # ceil(8 / 3) * 2
        (dict(max_epochs=2, accumulate_grad_batches=3, max_steps=5), 5),
        (dict(max_epochs=3, limit_train_batches=0.5), 12),
        (dict(max_epochs=-1, max_steps=7), 7),
        (dict(max_steps=4), 4),
    ],
)
def test_estimated_stepping_batches(tmp_path, kwargs, expected):
    seen = {}

    class Estimate(Regressor):
        def configure_optimizers(self):
            seen["steps"] = self.trainer.estimated_stepping_batches
            seen["module"] = self.trainer.lightning_module
            return super().configure_optimizers()

    model = Estimate()
    Trainer(default_root_dir=tmp_path, **kwargs, **QUIET).fit(model)
    assert seen == {"steps": expected, "module": model}


def test_is_last_batch_is_true_only_on_each_epochs_last_batch(tmp_path):
    seen: list[tuple[int, int, bool]] = []

    class Last(Regressor):
        def training_step(self, batch, batch_idx):
            seen.append((self.current_epoch, batch_idx, self.trainer.is_last_batch))
            return super().training_step(batch, batch_idx)

    Trainer(max_epochs=2, limit_train_batches=3, default_root_dir=tmp_path, **QUIET).fit(Last())
    assert seen == [(e, b, b == 2) for e in range(2) for b in range(3)]


def test_max_epochs_minus_one_trains_until_max_steps(tmp_path):
    model = Regressor()  # 8 batches an epoch
    trainer = Trainer(max_epochs=-1, max_steps=20, default_root_dir=tmp_path, **QUIET)
    trainer.fit(model)
    assert trainer.global_step == 20 and model.train_calls == 20


def test_lightnings_other_names_for_trainer_facts(tmp_path):
    seen = {}

    class Peek(Callback):
        def on_train_start(self, trainer, module):
            seen.update(model=trainer.model is module, node_rank=trainer.node_rank,
                        num_devices=trainer.num_devices, train=trainer.train_dataloader,
                        val=trainer.val_dataloaders, sigterm=trainer.received_sigterm,
                        ckpts=trainer.checkpoint_callbacks, stops=trainer.early_stopping_callbacks,
                        stop=trainer.early_stopping_callback)  # fmt: skip

    stop, ckpt = EarlyStopping("val_mse"), ModelCheckpoint()
    trainer = Trainer(max_epochs=1, callbacks=[stop, ckpt, Peek()], default_root_dir=tmp_path,
                      **QUIET)  # fmt: skip
    trainer.fit(Regressor())
    assert seen.pop("train") is trainer.train_loader and seen.pop("val") is trainer.val_loader
    assert seen == dict(model=True, node_rank=0, num_devices=1, sigterm=False, ckpts=[ckpt],
                        stops=[stop], stop=stop)  # fmt: skip
    assert trainer.progress_bar_callback is None  # enable_progress_bar=False


def test_lightning_trainer_names_we_lack_say_what_to_use():
    trainer = Trainer(**QUIET)
    with pytest.raises(AttributeError, match=r"Trainer\.scaler .*trainer\.precision_plugin"):
        trainer.scaler  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'no_such_thing'"):
        trainer.no_such_thing  # noqa: B018


def test_lightning_trainer_arguments_we_lack_raise_per_name():
    Trainer(plugins=None, sync_batchnorm=False, detect_anomaly=False, **QUIET)  # defaults: fine
    with pytest.raises(UserError, match=r"Trainer\(plugins=\['x'\]\) is not supported"):
        Trainer(plugins=["x"], **QUIET)
    with pytest.raises(UserError, match="convert_sync_batchnorm"):
        Trainer(sync_batchnorm=True, **QUIET)
    with pytest.raises(UserError, match="unknown argument 'max_epoch'; did you mean max_epochs"):
        Trainer(max_epoch=3, **QUIET)


def test_a_datamodules_batch_transfer_hooks_win_over_the_models(tmp_path):
    seen: list[str] = []

    class Hooked(RegressionData):
        def on_before_batch_transfer(self, batch, dataloader_idx):
            seen.append("dm_before")
            return batch

        def on_after_batch_transfer(self, batch, dataloader_idx):
            seen.append("dm_after")
            return batch

    class Model(Regressor):
        def on_before_batch_transfer(self, batch, dataloader_idx):
            seen.append("model_before")  # Lightning uses the DataModule's instead
            return batch

    Trainer(max_steps=1, num_sanity_val_steps=0, default_root_dir=tmp_path, **QUIET).fit(
        Model(), datamodule=Hooked()
    )
    assert seen == ["dm_before", "dm_after"]


@pytest.mark.parametrize(
    "name", ["optimizer_step", "optimizer_zero_grad", "backward", "configure_gradient_clipping",
             "lr_scheduler_step"],
)  # fmt: skip
def test_an_override_this_trainer_never_calls_is_refused_not_ignored(tmp_path, name):
    model_cls = type("Overriding", (Regressor,), {name: lambda self, *a, **k: None})
    with pytest.raises(
        UserError, match=f"overrides {name}\\(\\), which this Trainer does not call"
    ):
        Trainer(max_epochs=1, default_root_dir=tmp_path, **QUIET).fit(model_cls())


def test_weights_only_false_is_refused_with_why(tmp_path):
    trainer = Trainer(max_epochs=1, default_root_dir=tmp_path, **QUIET)
    trainer.fit(Regressor(), weights_only=True)  # Lightning 2.6's argument: True is ours anyway
    for stage in ("fit", "validate", "test", "predict"):
        with pytest.raises(UserError, match="always loaded with torch.load\\(weights_only=True"):
            getattr(trainer, stage)(Regressor(), weights_only=False)
