"""`Trainer.predict` and evaluating what `fit` trained (issue 14, items 3 and 4).

Lightning's documented behaviour is the spec: `predict_step` (default `self(batch)`) over
`predict_dataloader`, the predictions returned (a list per dataloader when there are several),
`limit_predict_batches`, `return_predictions`; `validate/test/predict` without a model use the
fitted one and load `ckpt_path` ("best" by default, with a warning); a DataModule may come in
the dataloaders' place; the default `ModelCheckpoint` writes `epoch=N-step=M.ckpt`. Under DDP
every rank predicts its own shard (tests at the end, two real gloo processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from launcher import DataModule, Module, Trainer
from launcher.callbacks import Callback, ModelCheckpoint
from launcher.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 4, generator=g))


class Model(Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Dropout(0.5))
        self.calls: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self(batch[0]).pow(2).mean()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self(batch[0]).pow(2).mean())

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test_loss", self(batch[0]).pow(2).mean())

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        self.calls.append(f"step:{batch_idx}:{self.training}:{torch.is_inference_mode_enabled()}")
        return self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(data(12, 0), batch_size=4)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(data(8, 1), batch_size=4)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(data(8, 2), batch_size=4)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(data(10, 3), batch_size=4)


class Data(DataModule):
    def __init__(self) -> None:
        super().__init__()
        self.stages: list[str] = []

    def setup(self, stage: str) -> None:
        self.stages.append(stage)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(data(8, 10), batch_size=4)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(data(4, 11), batch_size=4)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(data(4, 12), batch_size=4)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(data(6, 13), batch_size=4)


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def setup(self, trainer: Any, module: Any, stage: str) -> None:
        self.calls.append(f"setup:{stage}")

    def teardown(self, trainer: Any, module: Any, stage: str) -> None:
        self.calls.append(f"teardown:{stage}")

    def on_predict_start(self, trainer: Any, module: Any) -> None:
        self.calls.append("on_predict_start")

    def on_predict_epoch_start(self, trainer: Any, module: Any) -> None:
        self.calls.append("on_predict_epoch_start")

    def on_predict_batch_start(self, trainer: Any, module: Any, *args: Any) -> None:
        self.calls.append(f"on_predict_batch_start{list(args[1:])}")

    def on_predict_batch_end(self, trainer: Any, module: Any, *args: Any) -> None:
        self.calls.append(f"on_predict_batch_end{list(args[2:])}")

    def on_predict_epoch_end(self, trainer: Any, module: Any) -> None:
        self.calls.append("on_predict_epoch_end")

    def on_predict_end(self, trainer: Any, module: Any) -> None:
        self.calls.append("on_predict_end")


def make_trainer(tmp_path: Path, **kwargs: Any) -> Trainer:
    settings = {"max_epochs": 2, "logger": False, "enable_progress_bar": False,
                "enable_model_summary": False, "num_sanity_val_steps": 0,
                "run_dir": str(tmp_path / "run"), **kwargs}  # fmt: skip
    return Trainer(**settings)


def outputs(model: Module, loader: DataLoader) -> list[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        return [model(batch[0]) for batch in loader]


def _copy(model: Model) -> Model:
    other = Model()
    other.load_state_dict(model.state_dict())
    return other


def assert_same(got: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)


# -- predictions ------------------------------------------------------------------------------
def test_predict_returns_one_output_per_batch_in_eval_and_inference_mode(tmp_path: Path) -> None:
    recorder, model = Recorder(), Model()
    model.train()
    preds = make_trainer(tmp_path, callbacks=[recorder]).predict(model)
    assert preds is not None
    assert [tuple(p.shape) for p in preds] == [(4, 3), (4, 3), (2, 3)]
    assert all(not p.requires_grad and p.device.type == "cpu" for p in preds)
    assert_same(preds, outputs(_copy(model), model.predict_dataloader()))
    assert model.calls == [f"step:{i}:False:True" for i in range(3)]
    assert model.training  # the mode it had before, as Lightning restores it
    batches = [f"on_predict_batch_{edge}[{i}]" for i in range(3) for edge in ("start", "end")]
    assert recorder.calls == ["setup:predict", "on_predict_start", "on_predict_epoch_start",
                              *batches, "on_predict_epoch_end", "on_predict_end",
                              "teardown:predict"]  # fmt: skip


def test_predict_step_defaults_to_forward(tmp_path: Path) -> None:
    class Plain(Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    model = Plain()
    loader = DataLoader(torch.randn(5, 4), batch_size=2)
    preds = make_trainer(tmp_path).predict(model, loader)
    assert preds is not None
    with torch.no_grad():
        assert_same(preds, [model(batch) for batch in loader])


def test_several_dataloaders_give_a_list_per_dataloader_with_its_index(tmp_path: Path) -> None:
    recorder = Recorder()
    loaders = [DataLoader(data(6, 4), batch_size=4), DataLoader(data(3, 5), batch_size=2)]
    preds = make_trainer(tmp_path, callbacks=[recorder]).predict(Model(), dataloaders=loaders)
    assert preds is not None
    assert [[tuple(p.shape) for p in per] for per in preds] == [[(4, 3), (2, 3)], [(2, 3), (1, 3)]]
    starts = [c for c in recorder.calls if c.startswith("on_predict_batch_start")]
    assert starts == ["on_predict_batch_start[0, 0]", "on_predict_batch_start[1, 0]",
                      "on_predict_batch_start[0, 1]", "on_predict_batch_start[1, 1]"]  # fmt: skip


def test_dataloader_idx_must_be_in_the_signature_exactly_when_passed(tmp_path: Path) -> None:
    class NoIdx(Model):
        def predict_step(self, batch: Any, batch_idx: int) -> Any:
            return self(batch[0])

    class NeedsIdx(Model):
        def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int) -> Any:
            return self(batch[0])

    two = [DataLoader(data(2, 0), batch_size=2)] * 2
    with pytest.raises(UserError, match=r"multiple `predict_dataloader`, but no `dataloader_idx`"):
        make_trainer(tmp_path).predict(NoIdx(), two)
    with pytest.raises(UserError, match=r"only a single `predict_dataloader`, but have included"):
        make_trainer(tmp_path).predict(NeedsIdx())
    preds = make_trainer(tmp_path).predict(NeedsIdx(), two)
    assert preds is not None and len(preds) == 2


@pytest.mark.parametrize(("limit", "batches"), [(2, 2), (0.5, 1), (1.0, 3), (0, None)])
def test_limit_predict_batches(tmp_path: Path, limit: float, batches: int | None) -> None:
    model = Model()
    preds = make_trainer(tmp_path, limit_predict_batches=limit).predict(model)
    assert (None if preds is None else len(preds)) == batches
    assert len(model.calls) == (batches or 0)


def test_return_predictions_false_returns_none(tmp_path: Path) -> None:
    model = Model()
    assert make_trainer(tmp_path).predict(model, return_predictions=False) is None
    assert len(model.calls) == 3


def test_logging_in_predict_is_an_error_as_in_lightning(tmp_path: Path) -> None:
    class Logs(Model):
        def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
            self.log("x", 1.0)

    with pytest.raises(UserError, match="doesn't support logging"):
        make_trainer(tmp_path).predict(Logs())


def test_predict_progress_is_shown_on_rank_zero(tmp_path: Path, capsys: Any) -> None:
    make_trainer(tmp_path, enable_progress_bar=True).predict(Model())
    assert "predict done in" in capsys.readouterr().out


# -- evaluate what you trained ----------------------------------------------------------------
def perturb(model: Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)


def test_the_default_model_checkpoint_saves_lightnings_file(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path)
    trainer.fit(Model())
    callback = trainer.checkpoint_callback
    assert callback is not None and callback.monitor is None
    files = sorted(p.name for p in Path(trainer.checkpoint_dir).glob("*.ckpt"))
    assert files == ["epoch=1-step=6.ckpt"]
    assert callback.best_model_path == str(Path(trainer.checkpoint_dir) / files[0])
    assert (Path(trainer.checkpoint_dir) / "resume").is_dir()  # our resume checkpoints stay
    off = make_trainer(tmp_path / "off", enable_checkpointing=False)
    off.fit(Model())
    assert off.checkpoint_callback is None and not list(Path(off.checkpoint_dir).glob("*.ckpt"))
    mine = ModelCheckpoint(monitor="val_loss", filename="best")
    own = make_trainer(tmp_path / "own", callbacks=[mine])
    own.fit(Model())
    assert [c for c in own.callbacks if isinstance(c, ModelCheckpoint)] == [mine]


def test_validate_test_predict_without_a_model_load_the_best_checkpoint(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path)
    model = Model()
    trainer.fit(model)
    best = trainer.checkpoint_callback.best_model_path  # type: ignore[union-attr]
    reloaded = Model.load_from_checkpoint(best)
    perturb(model)  # the live weights moved on: only a reload gives the checkpoint's outputs
    with pytest.warns(UserWarning, match=r"`\.predict\(ckpt_path=None\)` was called without a"):
        preds = trainer.predict()
    assert preds is not None
    assert_same(preds, outputs(reloaded, model.predict_dataloader()))
    for stage, name in (("validate", "val_loss"), ("test", "test_loss")):
        perturb(model)
        with pytest.warns(UserWarning, match=r"The best model of the previous `fit` call"):
            result = getattr(trainer, stage)()
        expected = getattr(make_trainer(tmp_path / stage), stage)(reloaded)
        assert result == expected and name in result[0]


def test_ckpt_path_last_and_a_file_load_those_weights(tmp_path: Path) -> None:
    callback = ModelCheckpoint(save_last=True, monitor="val_loss", filename="best")
    trainer = make_trainer(tmp_path, callbacks=[callback], max_epochs=3)
    model = Model()
    trainer.fit(model)
    last = Model.load_from_checkpoint(callback.last_model_path)
    perturb(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preds = trainer.predict(ckpt_path="last")
    assert preds is not None
    assert_same(preds, outputs(last, model.predict_dataloader()))
    best = Model.load_from_checkpoint(callback.best_model_path)
    preds = trainer.predict(Model(), ckpt_path=callback.best_model_path)
    assert preds is not None
    assert_same(preds, outputs(best, model.predict_dataloader()))
    # "last" without a last file: Lightning's warning, and the weights stay as they are.
    plain = make_trainer(tmp_path / "plain")
    fitted = Model()
    plain.fit(fitted)
    live = outputs(_copy(fitted), fitted.test_dataloader())
    with pytest.warns(UserWarning, match=r'ckpt_path="last"\) is set, but there is no last'):
        plain.test(ckpt_path="last")
    assert_same(outputs(fitted, fitted.test_dataloader()), live)


def test_no_model_without_a_previous_run_and_best_without_checkpoints_are_errors(
    tmp_path: Path,
) -> None:
    for stage in ("validate", "test", "predict"):
        with pytest.raises(
            UserError, match=rf"`Trainer\.{stage}\(\)` requires a `LightningModule`"
        ):
            getattr(make_trainer(tmp_path), stage)()
    trainer = make_trainer(tmp_path / "off", enable_checkpointing=False, max_epochs=1)
    trainer.fit(Model())
    with pytest.raises(UserError, match=r'`\.predict\(ckpt_path="best"\)` is set but `ModelChec'):
        with pytest.warns(UserWarning, match="without a model"):
            trainer.predict()


def test_a_datamodule_in_the_dataloaders_place(tmp_path: Path) -> None:
    dm, model = Data(), Model()
    trainer = make_trainer(tmp_path, max_epochs=1)
    trainer.fit(model, dm)
    assert trainer.num_training_batches == 2 and trainer.datamodule is dm
    assert trainer.validate(model, dm) == make_trainer(tmp_path / "v").validate(
        model, datamodule=dm
    )
    assert "test_loss" in trainer.test(model, dm)[0]
    preds = trainer.predict(model, dm)
    assert preds is not None and [len(p) for p in preds] == [4, 2]
    assert dm.stages == ["fit", "validate", "validate", "test", "predict"]
    with pytest.raises(UserError, match="You cannot pass both"):
        trainer.predict(model, dataloaders=dm.predict_dataloader(), datamodule=dm)
    with pytest.raises(UserError, match="You cannot pass `train_dataloader`"):
        trainer.fit(model, dm.train_dataloader(), datamodule=dm)


# -- DDP: every rank its shard ----------------------------------------------------------------
DDP_SCRIPT = """
import json, sys, torch
from pathlib import Path
from torch.utils.data import DataLoader, TensorDataset
from launcher import Module, Trainer
from launcher.callbacks import BasePredictionWriter

out = Path(sys.argv[1])

class Writer(BasePredictionWriter):
    def write_on_epoch_end(self, trainer, module, predictions, batch_indices):
        rank = trainer.global_rank
        torch.save(predictions, out / f"predictions_{rank}.pt")
        torch.save(batch_indices, out / f"batch_indices_{rank}.pt")

class Model(Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 3)
    def forward(self, batch):  # the default predict_step: self(batch)
        return self.net(batch[0])

x = torch.randn(11, 4, generator=torch.Generator().manual_seed(1))
trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False,
                  enable_progress_bar=False, callbacks=[Writer("epoch")], run_dir=str(out / "run"))
preds = trainer.predict(Model(), DataLoader(TensorDataset(x), batch_size=2))
(out / f"returned_{trainer.global_rank}.json").write_text(json.dumps([len(p) for p in preds]))
"""


@pytest.mark.slow
def test_ddp_predict_each_rank_its_shard_every_sample_once(tmp_path: Path) -> None:
    script = tmp_path / "predict_ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x = torch.randn(11, 4, generator=torch.Generator().manual_seed(1))
    seen: list[int] = []
    for rank, shard in ((0, [0, 2, 4, 6, 8, 10]), (1, [1, 3, 5, 7, 9])):
        indices = torch.load(tmp_path / f"batch_indices_{rank}.pt")
        predictions = torch.load(tmp_path / f"predictions_{rank}.pt")
        flat = [i for batch in indices[0] for i in batch]
        assert flat == shard  # every world_size-th sample, no padding (Lightning's predict)
        with torch.no_grad():
            torch.testing.assert_close(torch.cat(predictions), net(x[flat]))
        returned = json.loads((tmp_path / f"returned_{rank}.json").read_text())
        assert sum(returned) == len(shard)  # each rank returns its own predictions
        seen += flat
    assert sorted(seen) == list(range(11))
