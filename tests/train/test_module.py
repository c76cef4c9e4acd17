"""`Module`: save_hyperparameters, self.log into a logger, what the model reads off the trainer.

    python -m pytest tests/test_module.py -q

The logger is a small in-memory `Logger` subclass, so every call the trainer makes is visible.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import DataModule, Module, Trainer
from launcher.loggers.base import Logger


class MemoryLogger(Logger):
    name = "memory"

    def __init__(self) -> None:
        self.params: dict = {}
        self.tags: dict = {}
        self.calls: list[tuple[int, dict[str, float]]] = []
        self.status: str | None = None

    def log_hyperparams(self, params):
        self.params.update(params)

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_metrics(self, metrics, step):
        self.calls.append((step, dict(metrics)))

    def finalize(self, status):
        self.status = status


class Classifier(Module):
    def __init__(self, hidden: int = 8, lr: float = 0.1, activation: str = "relu",
                 extra: dict | None = None, **kwargs) -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, self.hparams.hidden), torch.nn.ReLU(),
            torch.nn.Linear(self.hparams.hidden, 2),
        )  # fmt: skip

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(20, 4, generator=g)
        return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=4)


def test_save_hyperparameters_captures_init_arguments():
    model = Classifier(hidden=16, extra={"a": 1}, dropout=0.5)
    assert model.hparams == {"hidden": 16, "lr": 0.1, "activation": "relu",
                             "extra": {"a": 1}, "dropout": 0.5}  # fmt: skip
    assert model.hparams.lr == 0.1 and model.hparams["hidden"] == 16
    assert model.net[0].out_features == 16
    with pytest.raises(AttributeError, match="saved:"):
        _ = model.hparams.missing


def test_save_hyperparameters_names_and_ignore():
    class Picky(Module):
        def __init__(self, a: int = 1, b: int = 2, c: int = 3) -> None:
            super().__init__()
            self.save_hyperparameters("a", "c")

    class Ignoring(Module):
        def __init__(self, a: int = 1, backbone: object = None) -> None:
            super().__init__()
            self.save_hyperparameters(ignore=["backbone"])

    assert Picky(a=5).hparams == {"a": 5, "c": 3}
    assert Ignoring(backbone=object()).hparams == {"a": 1}


def test_datamodule_save_hyperparameters():
    class Data(DataModule):
        def __init__(self, batch_size: int = 32, root: str = "data") -> None:
            super().__init__()
            self.save_hyperparameters()

    assert Data(batch_size=4).hparams.batch_size == 4


def test_hyperparameters_and_step_metrics_reach_the_logger(tmp_path):
    logger = MemoryLogger()
    model = Classifier(hidden=6, lr=0.05)
    trainer = Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
                      default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model)
    assert trainer.logger is logger and trainer.loggers == [logger]
    assert {k: logger.params[k] for k in ("hidden", "lr", "activation")} == {
        "hidden": 6, "lr": 0.05, "activation": "relu"}  # fmt: skip
    assert logger.params["trainer.max_epochs"] == 2
    loss_steps = [step for step, metrics in logger.calls if "train_loss" in metrics]
    assert loss_steps == list(range(1, 11))  # 5 batches x 2 epochs, strictly increasing
    assert all(b > a for a, b in zip(loss_steps, loss_steps[1:], strict=False))
    losses = [m["train_loss"] for _, m in logger.calls if "train_loss" in m]
    assert len(set(losses)) == 10  # each step's own value, not a repeated one
    assert logger.status == "FINISHED"


def test_log_every_n_steps_thins_step_metrics(tmp_path):
    logger = MemoryLogger()
    Trainer(max_epochs=2, logger=logger, log_every_n_steps=3, enable_progress_bar=False,
            default_root_dir=tmp_path).fit(Classifier())  # fmt: skip
    loss_steps = [step for step, metrics in logger.calls if "train_loss" in metrics]
    assert loss_steps == [3, 6, 9]


def test_a_failing_fit_finalizes_the_logger_as_failed(tmp_path):
    class Broken(Classifier):
        def training_step(self, batch, batch_idx):
            if batch_idx == 2:
                raise ValueError("boom")
            return super().training_step(batch, batch_idx)

    logger = MemoryLogger()
    with pytest.raises(ValueError, match="boom"):
        Trainer(max_epochs=1, logger=logger, enable_progress_bar=False,
                default_root_dir=tmp_path).fit(Broken())  # fmt: skip
    assert logger.status == "FAILED"


def test_properties_outside_a_trainer():
    model = Classifier()
    with pytest.raises(RuntimeError, match="not attached to a Trainer"):
        _ = model.trainer
    assert (model.global_rank, model.current_epoch, model.global_step) == (0, 0, 0)
    assert model.device == torch.device("cpu")
    model.log("ignored", 1.0)  # a no-op without a trainer, as in Lightning


def test_log_dict_and_print(tmp_path, capsys):
    class Dicts(Classifier):
        def training_step(self, batch, batch_idx):
            self.log_dict({"a": 1.0, "b": 2.0}, prog_bar=True)
            self.print("rank zero speaks")
            return super().training_step(batch, batch_idx)

    trainer = Trainer(max_steps=1, logger=False, enable_progress_bar=False,
                      default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(Dicts())
    assert trainer.progress_bar_metrics == {"a": 1.0, "b": 2.0}
    assert "rank zero speaks" in capsys.readouterr().out


def test_trainer_reference_is_not_model_state(tmp_path):
    model = Classifier()
    Trainer(max_steps=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path).fit(
        model
    )
    assert not any("trainer" in k for k in model.state_dict())
    assert not any(isinstance(m, Trainer) for m in model.modules())


# -- the rest of LightningModule's surface ---------------------------------------------------
def _tiny_loader(n: int = 32, batch_size: int = 8) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, generator=g)),
                      batch_size=batch_size)  # fmt: skip


class Tiny(Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 1)
        self.calls: list[str] = []

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def test_step(self, batch, batch_idx):
        self.validation_step(batch, batch_idx)

    def configure_optimizers(self):
        self.calls.append("configure_optimizers")
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return _tiny_loader()

    def val_dataloader(self):
        return _tiny_loader(16)

    def test_dataloader(self):
        return _tiny_loader(16)


def test_freeze_and_unfreeze():
    model = Tiny()
    model.freeze()
    assert not model.training and all(not p.requires_grad for p in model.parameters())
    model.unfreeze()
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_logger_and_loggers_come_from_the_trainer(tmp_path):
    model = Tiny()
    assert model.logger is None and model.loggers == []
    first, second = MemoryLogger(), MemoryLogger()
    seen = {}

    class Peek(Tiny):
        def on_train_start(self):
            seen["logger"], seen["loggers"] = self.logger, self.loggers

    Trainer(max_epochs=1, logger=[first, second], enable_progress_bar=False,
            default_root_dir=tmp_path).fit(Peek())  # fmt: skip
    assert seen["logger"] is first and seen["loggers"] == [first, second]


def test_all_gather_on_one_process_returns_the_data_as_it_was(tmp_path):
    seen = {}

    class Gather(Tiny):
        def on_train_start(self):
            seen["scalar"] = self.all_gather(torch.tensor(1.5))
            seen["vector"] = self.all_gather(torch.arange(3))
            seen["nested"] = self.all_gather({"a": [torch.ones(2, 2)], "n": 3})

    Trainer(max_epochs=1, logger=False, enable_progress_bar=False,
            default_root_dir=tmp_path).fit(Gather())  # fmt: skip
    assert seen["scalar"].shape == () and seen["vector"].tolist() == [0, 1, 2]
    assert seen["nested"]["a"][0].shape == (2, 2) and seen["nested"]["n"].item() == 3


_GATHER_SCRIPT = r"""
import json, os, sys, torch
from launcher import Module, Trainer
from torch.utils.data import DataLoader, TensorDataset

class Gather(Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(2, 1)
    def training_step(self, batch, batch_idx):
        rank = self.global_rank
        out = {
            "scalar": self.all_gather(torch.tensor(float(rank))),
            "matrix": self.all_gather(torch.full((2, 3), float(rank))),
            "number": self.all_gather(rank + 10),
        }
        w = self.net.weight.sum() * (rank + 1)
        gathered = self.all_gather(w, sync_grads=True)
        gathered.sum().backward(retain_graph=True)
        self.result = {k: [list(v.shape), v.flatten().tolist()] for k, v in out.items()}
        self.result["grad"] = self.net.weight.grad.tolist()
        self.net.weight.grad = None
        return (self.net(batch[0]) ** 2).mean()
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)
    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(4, 2)), batch_size=2)

model = Gather()
Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
        accelerator="cpu", enable_model_summary=False,
        default_root_dir=sys.argv[1]).fit(model)
with open(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.json"), "w") as f:
    json.dump(model.result, f)
"""


def test_all_gather_under_two_process_ddp_stacks_one_row_per_rank(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from launcher.common.net import free_port

    script = tmp_path / "gather.py"
    script.write_text(_GATHER_SCRIPT)
    port = str(free_port())
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))  # fmt: skip
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode()[-3000:]
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["scalar"] == [[2], [0.0, 1.0]]  # Lightning: (world_size, *shape)
        assert got["matrix"] == [[2, 2, 3], [0.0] * 6 + [1.0] * 6]
        assert got["number"] == [[2], [10, 11]]
        # sync_grads: the gathered sum's gradient reaches this rank's weight through the
        # gather (autograd's all_gather sums the incoming gradients of every rank's copy).
        assert got["grad"] == [[2.0 * (rank + 1)] * 2]


def test_example_input_array_gives_model_summary_in_and_out_sizes(capsys):
    from launcher.callbacks.model_summary import summarize

    model = Tiny()
    assert model.example_input_array is None
    assert "In sizes" not in summarize(model)
    model.example_input_array = torch.zeros(3, 4)
    lines = summarize(model).splitlines()
    assert lines[0].split(" | ")[-2:] == ["In sizes", "Out sizes"]
    assert lines[2].split(" | ")[-2:] == ["[3, 4]  ", "[3, 1]   "]
    assert model.training  # the summary's eval-mode forward leaves the mode as it was


def test_configure_model_runs_after_setup_before_configure_optimizers(tmp_path):
    class Late(Tiny):
        def __init__(self) -> None:
            super().__init__()
            self.net = None

        def setup(self, stage):
            self.calls.append(f"setup:{stage}")

        def configure_model(self):
            self.calls.append("configure_model")
            if self.net is None:
                self.net = torch.nn.Linear(4, 1)

    model = Late()
    trainer = Trainer(max_epochs=1, logger=False, enable_progress_bar=False,
                      default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model)
    trainer.validate(model)
    trainer.test(model)
    assert model.calls == ["setup:fit", "configure_model", "configure_optimizers",
                           "setup:validate", "configure_model", "setup:test", "configure_model"]  # fmt: skip
