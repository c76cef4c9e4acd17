"""The hooks the Trainer calls, recorded in order, against Lightning 2.x's documented order.

Lightning's order (its "Hooks" pseudocode, tests/tests_pytorch/models/test_hooks.py): callbacks
first, then the model; the sanity check between `on_fit_start` and `on_train_start`; per batch
`on_before_zero_grad` on the first batch of an accumulation window (after `training_step`),
the backward hooks on every batch, `on_before_optimizer_step` on the stepping batches.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher.callbacks import Callback, ModelCheckpoint
from launcher.train.datamodule import DataModule
from launcher.train.module import Module
from launcher.train.trainer import Trainer

CALLBACK_HOOKS = (
    "setup", "teardown", "on_fit_start", "on_fit_end", "on_sanity_check_start",
    "on_sanity_check_end", "on_train_start", "on_train_end", "on_train_epoch_start",
    "on_train_epoch_end", "on_train_batch_start", "on_train_batch_end", "on_validation_start",
    "on_validation_end", "on_validation_epoch_start", "on_validation_epoch_end",
    "on_validation_batch_start", "on_validation_batch_end", "on_test_start", "on_test_end",
    "on_test_epoch_start", "on_test_epoch_end", "on_test_batch_start", "on_test_batch_end",
    "on_before_zero_grad", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step",
)  # fmt: skip
MODEL_HOOKS = tuple(h for h in CALLBACK_HOOKS if "sanity" not in h) + (
    "on_validation_model_eval", "on_validation_model_train", "on_test_model_eval",
    "on_test_model_train",
)  # fmt: skip


def data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def _recorder(name: str, prefix: str):
    def hook(self, *args):
        if prefix == "":
            args = args[2:]  # a callback's (trainer, module, ...)
        self.calls.append(f"{prefix}{name}:{args[0]}" if name in ("setup", "teardown") else
                          prefix + name)  # fmt: skip

    return hook


class Recorder(Callback):
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls


for _name in CALLBACK_HOOKS:
    setattr(Recorder, _name, _recorder(_name, ""))


class Model(Module):
    def __init__(self, calls: list[str], train_batches: int = 3, val_batches: int = 3) -> None:
        super().__init__()
        self.calls = calls
        self.net = torch.nn.Linear(4, 2)
        self.sizes = (train_batches, val_batches)

    def loss(self, batch):
        return F.cross_entropy(self.net(batch[0]), batch[1])

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch))

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self.loss(batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(data(4 * self.sizes[0], 0), batch_size=4)

    def val_dataloader(self):
        return DataLoader(data(4 * self.sizes[1], 1), batch_size=4)

    def test_dataloader(self):
        return DataLoader(data(8, 2), batch_size=4)


for _name in MODEL_HOOKS:
    setattr(Model, _name, _recorder(_name, "model."))


def trainer(tmp_path: Path, calls: list[str], **kwargs) -> Trainer:
    settings = dict(max_epochs=1, logger=False, enable_progress_bar=False,
                    enable_model_summary=False, enable_checkpointing=False,
                    default_root_dir=str(tmp_path), seed=0)  # fmt: skip
    return Trainer(**{**settings, **kwargs}, callbacks=[Recorder(calls)])


def both(*hooks: str) -> list[str]:
    """Each hook on the callback, then on the model."""
    return [c for h in hooks for c in (h, f"model.{h}")]


def validation(batches: int) -> list[str]:
    per_batch = both("on_validation_batch_start", "on_validation_batch_end")
    return [
        "model.on_validation_model_eval",
        *both("on_validation_start", "on_validation_epoch_start"),
        *per_batch * batches,
        *both("on_validation_epoch_end", "on_validation_end"),
        "model.on_validation_model_train",
    ]


def train_batch(zero_grad: bool, step: bool) -> list[str]:
    return [
        *both("on_train_batch_start"),
        *(both("on_before_zero_grad") if zero_grad else []),
        *both("on_before_backward", "on_after_backward"),
        *(both("on_before_optimizer_step") if step else []),
        *both("on_train_batch_end"),
    ]


def fit_calls(sanity: int, batches: list[list[str]], val_batches: int = 3) -> list[str]:
    sanity_calls = (
        ["on_sanity_check_start", *validation(sanity), "on_sanity_check_end"] if sanity else []
    )
    return [
        "setup:fit", "model.setup:fit", *both("on_fit_start"), *sanity_calls,
        *both("on_train_start", "on_train_epoch_start"), *(c for b in batches for c in b),
        *validation(val_batches), *both("on_train_epoch_end", "on_train_end", "on_fit_end"),
        "teardown:fit", "model.teardown:fit",
    ]  # fmt: skip


def test_fit_calls_every_hook_in_lightnings_order_with_the_sanity_check(tmp_path):
    calls: list[str] = []
    trainer(tmp_path, calls).fit(Model(calls))  # num_sanity_val_steps: Lightning's 2
    assert calls == fit_calls(2, [train_batch(zero_grad=True, step=True)] * 3)


def test_fit_without_a_sanity_check(tmp_path):
    calls: list[str] = []
    trainer(tmp_path, calls, num_sanity_val_steps=0).fit(Model(calls))
    assert calls == fit_calls(0, [train_batch(zero_grad=True, step=True)] * 3)
    assert not any("sanity" in c for c in calls)


def test_sanity_check_minus_one_runs_every_validation_batch(tmp_path):
    calls: list[str] = []
    trainer(tmp_path, calls, num_sanity_val_steps=-1).fit(Model(calls, val_batches=4))
    assert calls == fit_calls(4, [train_batch(zero_grad=True, step=True)] * 3, val_batches=4)


def test_accumulation_zero_grads_at_a_window_start_and_steps_at_its_end(tmp_path):
    """accumulate_grad_batches=2 over 3 batches: windows (0, 1) and (2,), as in Lightning."""
    calls: list[str] = []
    trainer(tmp_path, calls, accumulate_grad_batches=2, num_sanity_val_steps=0).fit(Model(calls))
    batches = [
        train_batch(zero_grad=True, step=False),
        train_batch(zero_grad=False, step=True),
        train_batch(zero_grad=True, step=True),
    ]
    assert calls == fit_calls(0, batches)


def test_validate_and_test_call_their_hooks_in_order(tmp_path):
    calls: list[str] = []
    model = Model(calls)
    trainer(tmp_path, calls).validate(model)
    assert calls == ["setup:validate", "model.setup:validate", *validation(3),
                     "teardown:validate", "model.teardown:validate"]  # fmt: skip
    calls.clear()
    trainer(tmp_path, calls).test(model)
    per_batch = both("on_test_batch_start", "on_test_batch_end")
    assert calls == [
        "setup:test", "model.setup:test", "model.on_test_model_eval",
        *both("on_test_start", "on_test_epoch_start"), *per_batch * 2,
        *both("on_test_epoch_end", "on_test_end"), "model.on_test_model_train",
        "teardown:test", "model.teardown:test",
    ]  # fmt: skip


def test_a_datamodule_is_set_up_before_and_torn_down_before_the_callbacks(tmp_path):
    calls: list[str] = []

    class Data(DataModule):
        def setup(self, stage):
            calls.append(f"data.setup:{stage}")

        def teardown(self, stage):
            calls.append(f"data.teardown:{stage}")

        def train_dataloader(self):
            return DataLoader(data(8, 0), batch_size=4)

    trainer(tmp_path, calls).fit(Model(calls), datamodule=Data())
    assert calls[:2] == ["data.setup:fit", "setup:fit"]
    assert calls[-3:] == ["data.teardown:fit", "teardown:fit", "model.teardown:fit"]


def test_on_before_backward_gets_the_loss_backward_receives(tmp_path):
    seen: list[tuple[float, float]] = []

    class Losses(Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            self.loss = F.cross_entropy(self.net(batch[0]), batch[1])
            return self.loss

        def on_before_backward(self, loss):
            seen.append((loss.item(), self.loss.item()))

        def on_after_backward(self):
            assert self.net.weight.grad is not None

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train_dataloader(self):
            return DataLoader(data(16, 0), batch_size=4)

    trainer(tmp_path, [], accumulate_grad_batches=2).fit(Losses())
    assert len(seen) == 4
    # Lightning hands the hook the loss divided by the accumulation, as backward gets it.
    assert all(got == pytest.approx(loss / 2) for got, loss in seen)


def test_the_sanity_check_logs_nothing_and_leaves_the_random_state_alone(tmp_path):
    """Metrics of the sanity check reach no callback_metrics; training draws the same numbers."""
    during: list[bool] = []

    class Random(Model):
        def train_dataloader(self):
            return DataLoader(data(16, 0), batch_size=4, shuffle=True)

        def validation_step(self, batch, batch_idx):
            during.append(self.trainer.sanity_checking)
            torch.rand(3)  # draws from the global generator
            self.log("sanity_only", 1.0 if self.trainer.sanity_checking else 0.0)

    class Peek(Callback):
        def on_train_start(self, trainer, module):
            self.metrics = dict(trainer.callback_metrics)

    weights = []
    for sanity in (0, 2):
        peek = Peek()
        torch.manual_seed(0)
        model = Random([])
        t = Trainer(max_epochs=1, logger=False, enable_progress_bar=False, seed=0,
                    enable_model_summary=False,
                    enable_checkpointing=False, default_root_dir=str(tmp_path),
                    num_sanity_val_steps=sanity, callbacks=[peek])  # fmt: skip
        t.fit(model)
        assert peek.metrics == {} and not t.sanity_checking
        weights.append(model.net.weight.detach().clone())
    assert during[:3] == [False] * 3 and during[3:5] == [True, True]
    assert torch.equal(weights[0], weights[1])


def test_model_summary_is_printed_at_fit_start_unless_disabled(tmp_path, capsys):
    Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
            default_root_dir=str(tmp_path)).fit(Model([]))  # fmt: skip
    out = capsys.readouterr().out
    assert "| Name | Type   | Params | Mode" in out and "10        Total params" in out
    Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
            enable_model_summary=False, default_root_dir=str(tmp_path)).fit(Model([]))  # fmt: skip
    assert "Total params" not in capsys.readouterr().out


def test_batch_transfer_hooks_change_the_batch_the_steps_see(tmp_path):
    class Doubled(Model):
        def on_before_batch_transfer(self, batch, dataloader_idx):
            return [batch[0] * 0, batch[1]]

        def on_after_batch_transfer(self, batch, dataloader_idx):
            return [batch[0] + 1, batch[1]]

        def training_step(self, batch, batch_idx):
            assert torch.equal(batch[0], torch.ones_like(batch[0]))
            return super().training_step(batch, batch_idx)

    trainer(tmp_path, []).fit(Doubled([]))


def test_checkpointing_runs_after_the_models_train_epoch_end(tmp_path):
    """As Lightning: on_train_epoch_end reaches other callbacks, the model, then checkpointing
    and early stopping (so they can see what the model's hook did)."""
    calls: list[str] = []

    class Checkpoint(ModelCheckpoint):
        def on_train_epoch_end(self, trainer, module):
            calls.append("checkpoint.on_train_epoch_end")
            super().on_train_epoch_end(trainer, module)

    ckpt = Checkpoint(dirpath=str(tmp_path / "ck"), monitor="val_loss")
    Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[ckpt, Recorder(calls)], default_root_dir=str(tmp_path)).fit(Model(calls))  # fmt: skip
    ends = [c for c in calls if c.endswith("on_train_epoch_end")]
    assert ends == ["on_train_epoch_end", "model.on_train_epoch_end",
                    "checkpoint.on_train_epoch_end"]  # fmt: skip
    assert ckpt.best_model_path


def test_unknown_hook_names_warn_once_naming_the_replacement(tmp_path):
    class Old(Callback):
        def on_epoch_end(self, trainer, module): ...

        def on_train_epoch_ends(self, trainer, module): ...

        def helper(self): ...  # not hook-like: no warning

    class OldModel(Model):
        def training_epoch_end(self, outputs): ...

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            Trainer(max_epochs=1, logger=False, enable_progress_bar=False, callbacks=[Old()],
                    enable_checkpointing=False, default_root_dir=str(tmp_path)).fit(OldModel([]))  # fmt: skip
    messages = [str(w.message) for w in caught if "never calls" in str(w.message)]
    assert len(messages) == 3, messages  # once each, though fit ran twice
    assert any("on_epoch_end()" in m and "removed in Lightning 2.0" in m
               and "on_train_epoch_end" in m for m in messages)  # fmt: skip
    assert any("on_train_epoch_ends()" in m and "did you mean on_train_epoch_end?" in m
               for m in messages)  # fmt: skip
    assert any("training_epoch_end()" in m and "on_train_epoch_end" in m for m in messages)
