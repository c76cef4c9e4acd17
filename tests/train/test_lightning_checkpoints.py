"""Checkpoints Lightning code can read (issue 14, item 2), on `tests/recipes/tiny.py`.

Lightning's documented behaviour is the spec: the checkpoint's keys (`state_dict`,
`hyper_parameters`, `optimizer_states`, `callbacks`, `loops`...), `on_save_checkpoint` /
`on_load_checkpoint` seeing one dict, callback `state_key`s, `load_from_checkpoint`,
`save_hyperparameters(dict)`, and `fit(ckpt_path="last" | "best")`.
"""

from __future__ import annotations

import warnings
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
import torch

from launcher import DataModule, Module, Trainer
from launcher.callbacks import Callback, EarlyStopping, ModelCheckpoint
from launcher.cli.recipe import load_recipe
from launcher.errors import UserError
from launcher.train import state as trainer_state
from tests.resume_harness import TINY, SaveAt, assert_bitwise_equal

LIGHTNING_CORE = ["callbacks", "epoch", "global_step", "hyper_parameters", "loops",
                  "lr_schedulers", "optimizer_states", "pytorch-lightning_version",
                  "state_dict"]  # fmt: skip


def tiny(tmp_path: Path, **kwargs: Any) -> tuple[Trainer, type]:
    recipe = load_recipe(TINY)
    trainer = Trainer(**{**recipe.trainer_defaults, "logger": False, "seed": 0,
                         "run_dir": str(tmp_path / "run"), **kwargs})  # fmt: skip
    return trainer, recipe.module_cls


def test_the_checkpoint_holds_lightnings_keys(tmp_path: Path) -> None:
    trainer, model_cls = tiny(tmp_path, max_steps=3)
    model = model_cls()
    trainer.fit(model)
    path = tmp_path / "x.ckpt"
    trainer.save_checkpoint(str(path))
    state = torch.load(path, weights_only=True)
    assert set(LIGHTNING_CORE) <= set(state)
    assert state["global_step"] == 3 and state["hyper_parameters"] == dict(model.hparams)
    assert_bitwise_equal(state["state_dict"], model.state_dict())
    trainer.save_checkpoint(str(tmp_path / "w.ckpt"), weights_only=True)
    weights = torch.load(tmp_path / "w.ckpt", weights_only=True)
    assert "optimizer_states" not in weights and "callbacks" not in weights
    assert {"state_dict", "hyper_parameters", "epoch", "global_step"} <= set(weights)


class AddsKeys(Callback):
    """Lightning's documented use: read `state_dict`, add your own keys, get them back."""

    def __init__(self) -> None:
        self.seen_weights: list[str] = []
        self.loaded: dict[str, Any] = {}

    def on_save_checkpoint(self, trainer, module, checkpoint) -> None:
        self.seen_weights = sorted(checkpoint["state_dict"])
        checkpoint["my_callback_note"] = {"steps": trainer.global_step}

    def on_load_checkpoint(self, trainer, module, checkpoint) -> None:
        self.loaded = dict(checkpoint)


def test_keys_added_in_on_save_checkpoint_come_back_in_on_load_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "mid.ckpt"
    saver = AddsKeys()
    trainer, model_cls = tiny(tmp_path / "a", max_steps=8, callbacks=[saver, SaveAt(4, path)])

    class ModelAddsKeys(model_cls):
        loaded_note: Any = None

        def on_save_checkpoint(self, checkpoint) -> None:
            checkpoint["model_note"] = torch.tensor([1.0, 2.0])

        def on_load_checkpoint(self, checkpoint) -> None:
            ModelAddsKeys.loaded_note = checkpoint["model_note"]

    trainer.fit(ModelAddsKeys())
    assert saver.seen_weights == sorted(ModelAddsKeys().state_dict())
    loader = AddsKeys()
    resumed, _ = tiny(tmp_path / "b", max_steps=8, callbacks=[loader])
    resumed.fit(ModelAddsKeys(), ckpt_path=str(path))  # used to fail: keys nothing consumed
    assert loader.loaded["my_callback_note"] == {"steps": 4}
    assert "state_dict" in loader.loaded and "optimizer_states" in loader.loaded
    assert torch.equal(ModelAddsKeys.loaded_note, torch.tensor([1.0, 2.0]))
    assert resumed.global_step == 8 and resumed.loop.resumes == 1


class Counter(Callback):
    """A stateful callback with Lightning's default `state_key` (its class name)."""

    def __init__(self) -> None:
        self.count = 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.count = state_dict["count"]


def test_two_stateful_callbacks_with_one_state_key_are_an_error(tmp_path: Path) -> None:
    trainer, model_cls = tiny(tmp_path, max_steps=2, callbacks=[Counter(), Counter()])
    with pytest.raises(UserError, match="more than one stateful callback of type `Counter`"):
        trainer.fit(model_cls())


def test_two_checkpoint_callbacks_keep_both_states_under_lightnings_keys(tmp_path: Path) -> None:
    by_loss = ModelCheckpoint(monitor="val_loss", mode="min", filename="loss-{epoch}")
    by_acc = ModelCheckpoint(monitor="val_loss", mode="max", filename="worst-{epoch}")
    stop = EarlyStopping(monitor="val_loss", patience=5)
    trainer, model_cls = tiny(tmp_path, max_epochs=2, callbacks=[by_loss, by_acc, stop])
    trainer.fit(model_cls())
    assert by_loss.state_key == (
        "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, "
        "'every_n_epochs': 1, 'train_time_interval': None}"
    )
    assert stop.state_key == "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"
    path = tmp_path / "both.ckpt"
    trainer.save_checkpoint(str(path))
    saved = torch.load(path, weights_only=True)["callbacks"]
    assert saved[by_loss.state_key]["best_model_path"] == by_loss.best_model_path
    assert saved[by_acc.state_key]["best_model_path"] == by_acc.best_model_path
    assert by_loss.best_model_path != by_acc.best_model_path
    assert stop.state_key in saved


def _to_format_1(state: dict[str, Any]) -> dict[str, Any]:
    """The layout launcher wrote before format 2 (keys, callback state keys), from a new file."""
    renamed = {new: old for old, new in trainer_state._FORMAT_1_KEYS.items()}
    old: dict[str, Any] = {"format": 1}
    for key, value in state.items():
        if key in ("launcher_format", "epoch", "global_step", "pytorch-lightning_version",
                   "hparams_name"):  # fmt: skip
            continue
        if key == "loops":
            old["loop"] = value["fit_loop"]
        elif key == "callbacks":
            old[key] = {
                "ModelCheckpoint{monitor=None,mode=min,every_n_train_steps=0,every_n_epochs=1}"
                if k.startswith("ModelCheckpoint") else k: v
                for k, v in value.items()
            }  # fmt: skip
        else:
            old[renamed.get(key, key)] = value
    return old


def test_a_format_1_checkpoint_still_resumes_bitwise(tmp_path: Path) -> None:
    path = tmp_path / "mid.ckpt"
    ckpt = ModelCheckpoint(save_last=True)
    straight, model_cls = tiny(tmp_path / "a", max_steps=16, callbacks=[SaveAt(7, path), ckpt])
    model_a = model_cls()
    straight.fit(model_a)
    old = _to_format_1(torch.load(path, weights_only=True))
    assert sorted(old) == ["callbacks", "format", "hparams", "launch", "loggers", "loop",
                           "lr_schedulers", "model", "optimizers", "per_rank", "precision",
                           "sampler"]  # fmt: skip
    torch.save(old, path)
    resumed, _ = tiny(tmp_path / "b", max_steps=16, callbacks=[ModelCheckpoint(save_last=True)])
    model_b = model_cls()
    resumed.fit(model_b, ckpt_path=str(path))
    assert_bitwise_equal(model_a.state_dict(), model_b.state_dict(), "model")
    assert_bitwise_equal(straight.optimizers[0].state_dict(), resumed.optimizers[0].state_dict())
    assert resumed.loop.resumes == 1
    reloaded = model_cls.load_from_checkpoint(path)  # format 1 weights load too
    assert_bitwise_equal(reloaded.state_dict(), old["model"])


# -- load_from_checkpoint -----------------------------------------------------------------------
def test_load_from_checkpoint_rebuilds_the_model_with_identical_outputs(tmp_path: Path) -> None:
    trainer, model_cls = tiny(tmp_path, max_steps=4)
    model = model_cls(hidden=12)
    trainer.fit(model)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(str(path))
    reloaded = model_cls.load_from_checkpoint(str(path))
    assert type(reloaded) is model_cls and reloaded.hparams["hidden"] == 12
    assert reloaded.training  # as Lightning: not switched to eval mode
    model.eval(), reloaded.eval()
    x = torch.randn(5, 16)
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))
    on_cpu = model_cls.load_from_checkpoint(path, map_location="cpu", lr=0.5)
    assert on_cpu.hparams["lr"] == 0.5 and on_cpu.device.type == "cpu"
    with pytest.raises(RuntimeError, match="size mismatch"):
        model_cls.load_from_checkpoint(path, hidden=3)  # strict: shapes must match


class DictModel(Module):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters(config)
        self.net = torch.nn.Linear(config["inputs"], 2)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self) -> Any:
        data = torch.utils.data.TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
        return torch.utils.data.DataLoader(data, batch_size=4)


class NamespaceModel(Module):
    def __init__(self, args: Namespace, unused: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters(args)
        self.net = torch.nn.Linear(args.inputs, 2)


def test_save_hyperparameters_of_a_dict_or_namespace_saves_its_contents(tmp_path: Path) -> None:
    model = DictModel({"inputs": 3, "lr": 0.1})
    assert dict(model.hparams) == {"inputs": 3, "lr": 0.1} and model.hparams_name == "config"
    spaced = NamespaceModel(Namespace(inputs=4, lr=0.2))
    assert dict(spaced.hparams) == {"inputs": 4, "lr": 0.2}
    trainer = Trainer(logger=False, max_steps=2, run_dir=str(tmp_path / "run"),
                      enable_progress_bar=False)  # fmt: skip
    trainer.fit(model)
    path = tmp_path / "d.ckpt"
    trainer.save_checkpoint(str(path), weights_only=True)
    saved = torch.load(path, weights_only=True)
    assert saved["hyper_parameters"] == {"inputs": 3, "lr": 0.1}
    assert saved["hparams_name"] == "config"
    reloaded = DictModel.load_from_checkpoint(path)  # passed back as config=...
    assert dict(reloaded.hparams) == {"inputs": 3, "lr": 0.1}
    assert_bitwise_equal(reloaded.state_dict(), model.state_dict())


# -- ckpt_path ----------------------------------------------------------------------------------
def test_fit_ckpt_path_last_without_a_checkpoint_warns_and_starts_fresh(tmp_path: Path) -> None:
    trainer, model_cls = tiny(tmp_path, max_steps=2)
    with pytest.warns(UserWarning, match=r'ckpt_path="last"\) is set, but there is no last'):
        trainer.fit(model_cls(), ckpt_path="last")
    assert trainer.global_step == 2 and trainer.loop.resumes == 0
    missing = tiny(tmp_path / "b", max_steps=2)[0]
    with pytest.raises(UserError, match="does not exist"):
        missing.fit(model_cls(), ckpt_path=str(tmp_path / "nope.ckpt"))


def test_fit_ckpt_path_last_finds_model_checkpoints_last_file(tmp_path: Path) -> None:
    dirpath = tmp_path / "ckpts"
    first, model_cls = tiny(tmp_path / "a", max_epochs=1,
                            callbacks=[ModelCheckpoint(dirpath=dirpath, save_last=True)])  # fmt: skip
    first.fit(model_cls())
    assert (dirpath / "last.ckpt").is_file()
    again, _ = tiny(tmp_path / "b", max_epochs=2,
                    callbacks=[ModelCheckpoint(dirpath=dirpath, save_last=True)])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again.fit(model_cls(), ckpt_path="last")
    assert again.loop.resumes == 1 and again.global_step == 2 * first.global_step


def test_ckpt_path_best_loads_model_checkpoints_best(tmp_path: Path) -> None:
    ckpt = ModelCheckpoint(monitor="val_loss", save_top_k=1)
    trainer, model_cls = tiny(tmp_path, max_epochs=2, callbacks=[ckpt])
    model = model_cls()
    trainer.fit(model)
    best = torch.load(ckpt.best_model_path, weights_only=True)["state_dict"]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    trainer.validate(model, ckpt_path="best")
    assert_bitwise_equal(model.state_dict(), best)
    fresh, _ = tiny(tmp_path / "b", max_epochs=1, callbacks=[ModelCheckpoint(monitor="val_loss")])
    with pytest.raises(UserError, match=r'ckpt_path="best"\)` is set but `ModelCheckpoint` is '
                       "not configured to save the best model"):  # fmt: skip
        fresh.fit(model_cls(), ckpt_path="best")


def test_a_repeated_state_key_fails_when_the_stage_starts(tmp_path: Path) -> None:
    trainer, model_cls = tiny(tmp_path, max_steps=2, callbacks=[Counter(), Counter()],
                              enable_checkpointing=False)  # fmt: skip
    with pytest.raises(UserError, match="more than one stateful callback"):
        trainer.validate(model_cls())


def test_checkpoints_holding_objects_are_refused_and_lightnings_cannot_resume_fit(
    tmp_path: Path,
) -> None:
    trainer, model_cls = tiny(tmp_path, max_steps=2)
    model = model_cls()
    trainer.fit(model)
    lightning_like = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                      "pytorch-lightning_version": "2.6.0", "loops": {}}  # fmt: skip
    torch.save({**lightning_like, "hparams_type": Namespace}, tmp_path / "objects.ckpt")
    with pytest.raises(UserError, match="refusing to load .* pickled code or objects"):
        model_cls.load_from_checkpoint(tmp_path / "objects.ckpt")
    torch.save(lightning_like, tmp_path / "lightning.ckpt")
    assert_bitwise_equal(model_cls.load_from_checkpoint(tmp_path / "lightning.ckpt").state_dict(),
                         model.state_dict())  # fmt: skip
    again, _ = tiny(tmp_path / "b", max_steps=4)
    with pytest.raises(UserError, match="not a launcher checkpoint .*load_from_checkpoint"):
        again.fit(model_cls(), ckpt_path=str(tmp_path / "lightning.ckpt"))
    with pytest.raises(UserError, match="weights_only=False"):
        model_cls.load_from_checkpoint(tmp_path / "lightning.ckpt", weights_only=False)


class Data(DataModule):
    def __init__(self, batch_size: int = 4, root: str = "data") -> None:
        super().__init__()
        self.save_hyperparameters()


def test_datamodule_load_from_checkpoint_reads_its_hyperparameters(tmp_path: Path) -> None:
    path = tmp_path / "dm.ckpt"
    torch.save({"state_dict": {}, "datamodule_hyper_parameters": {"batch_size": 16,
                                                                  "root": "/d"}}, path)  # fmt: skip
    dm = Data.load_from_checkpoint(path, root="/other")
    assert dict(dm.hparams) == {"batch_size": 16, "root": "/other"}


def test_a_resumed_run_continues_its_csv_logger_version(tmp_path: Path) -> None:
    """Loggers are keyed by `state_key`: a CSV and a TensorBoard logger both named
    "lightning_logs" (Lightning's default) each get their state back, and write on into
    the versions they had instead of opening new ones."""
    from launcher.loggers import CSVLogger, TensorBoardLogger

    def loggers() -> list[Any]:
        return [TensorBoardLogger(str(tmp_path / "logs")), CSVLogger(str(tmp_path / "logs"))]

    class Crash(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if trainer.global_step == 3:
                raise RuntimeError("node lost")

    first, model_cls = tiny(tmp_path, max_steps=8, checkpoint_every_n_steps=2,
                            logger=loggers(), callbacks=[Crash()])  # fmt: skip
    with pytest.raises(RuntimeError, match="node lost"):
        first.fit(model_cls())
    folder = tmp_path / "logs" / "lightning_logs"
    before = sorted(p.name for p in folder.iterdir())  # each logger picked its own version
    again, _ = tiny(tmp_path, max_steps=8, logger=loggers())
    again.fit(model_cls(), ckpt_path="last")
    assert sorted(p.name for p in folder.iterdir()) == before and len(before) == 2
    csv = next(folder.glob("version_*/metrics.csv")).read_text().splitlines()
    steps = [row.split(",")[csv[0].split(",").index("step")] for row in csv[1:]]
    assert "7" in steps
