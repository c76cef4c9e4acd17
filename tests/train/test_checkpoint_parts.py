"""The checkpoint as a mapping of parts (state.py), the loop position (loop.py), the requeue exit.

Fast, in-process tests on `tests/recipes/tiny.py`; the kill/resume tests with worker
subprocesses are in test_state.py (slow).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from launcher import Trainer
from launcher.callbacks import Callback
from launcher.callbacks.base import HOOKS
from launcher.cli.recipe import load_recipe
from launcher.errors import RequeueRequested, UserError
from launcher.train import state as trainer_state
from launcher.train.loop import LoopState
from tests.resume_harness import TINY, SaveAt, assert_bitwise_equal

# The on-disk layout of FORMAT_VERSION 2: Lightning's keys, then ours for exact resume.
TOP_LEVEL = ["callbacks", "epoch", "global_step", "hparams_name", "hyper_parameters",
             "launcher_format", "launcher_launch", "launcher_loggers", "launcher_per_rank",
             "launcher_precision", "launcher_sampler", "loops", "lr_schedulers",
             "optimizer_states", "pytorch-lightning_version", "state_dict"]  # fmt: skip
LOOP_KEYS = ["batch_idx", "batches_stepped", "epoch", "finished", "global_step",
             "last_val_batch", "micro_step", "offset_batch", "resumes", "sample_offset",
             "total_batch_idx"]  # fmt: skip


def tiny(tmp_path: Path, **kwargs) -> tuple[Trainer, type]:
    """A Trainer for the tiny recipe, and its model class extended with a test loop."""
    recipe = load_recipe(TINY)
    trainer = Trainer(**{**recipe.trainer_defaults, "logger": False, "seed": 0,
                         "run_dir": str(tmp_path / "run"), **kwargs})  # fmt: skip

    class WithTest(recipe.module_cls):
        def test_step(self, batch, batch_idx):
            self.log("test_loss", torch.nn.functional.cross_entropy(self(batch[0]), batch[1]))

        def test_dataloader(self):
            return self.val_dataloader()

    return trainer, WithTest


def test_loop_state_round_trip_resumes_at_the_next_epoch_after_epoch_end() -> None:
    loop = LoopState(epoch=2, global_step=30, batches_stepped=30, batch_idx=6,
                     accumulate_grad_batches=4, resumes=1)  # fmt: skip
    assert loop.state_dict() == {"epoch": 2, "global_step": 30, "batches_stepped": 30,
                                 "batch_idx": 6, "micro_step": 2, "finished": False,
                                 "resumes": 1, "total_batch_idx": 0,
                                 "last_val_batch": -1, "sample_offset": 0,
                                 "offset_batch": 0}  # fmt: skip
    loop.epoch_done = True  # saved from an epoch-end hook
    saved = loop.state_dict()
    assert (saved["epoch"], saved["batch_idx"]) == (3, 0)
    resumed = LoopState()
    resumed.load_state_dict(saved)
    assert (resumed.epoch, resumed.global_step, resumed.batch_idx) == (3, 30, 0)
    assert resumed.resumes == 2 and not resumed.epoch_done
    older = {k: v for k, v in saved.items() if k not in ("resumes", "batches_stepped")}
    resumed.load_state_dict(older)  # before resumes and batches were counted
    assert resumed.resumes == 1 and resumed.batches_stepped == 30


def test_checkpoint_keeps_the_format_2_layout(tmp_path: Path) -> None:
    trainer, model_cls = tiny(tmp_path, max_steps=5, accumulate_grad_batches=2)
    trainer.fit(model_cls())
    path = tmp_path / "full.ckpt"
    trainer.save_checkpoint(str(path))
    state = torch.load(path, weights_only=True)
    assert sorted(state) == TOP_LEVEL
    assert state["launcher_format"] == trainer_state.FORMAT_VERSION == 2
    assert sorted(state["loops"]["fit_loop"]) == LOOP_KEYS
    assert state["loops"]["fit_loop"]["global_step"] == state["global_step"] == 5
    assert state["epoch"] == trainer.current_epoch
    assert state["launcher_sampler"] == {"seed": 0, "world_size": 1, "epoch_samples": 0}
    assert len(state["launcher_per_rank"]) == 1
    assert sorted(state["launcher_per_rank"][0]) == ["metric_states", "results", "rng"]
    assert state["launcher_launch"] == {
        "world_size": 1,
        "strategy": "ddp",
        "accumulate_grad_batches": 2,
    }
    assert len(state["optimizer_states"]) == 1 and state["launcher_precision"] == {}


def test_resuming_from_a_saved_file_restores_every_part(tmp_path: Path) -> None:
    """Train 16 steps (saving at step 7, mid-epoch), and resume a fresh trainer from that file:
    the same bits at step 16 (model, optimizer, scheduler, RNG for dropout, data order)."""
    path = tmp_path / "mid.ckpt"
    straight, model_cls = tiny(tmp_path / "a", max_steps=16, callbacks=[SaveAt(7, path)])
    model_a = model_cls()
    straight.fit(model_a)
    resumed, _ = tiny(tmp_path / "b", max_steps=16)
    model_b = model_cls()
    resumed.fit(model_b, ckpt_path=str(path))
    assert_bitwise_equal(model_a.state_dict(), model_b.state_dict(), "model")
    assert_bitwise_equal(straight.optimizers[0].state_dict(), resumed.optimizers[0].state_dict())
    assert resumed.loop.resumes == 1 and resumed.global_step == 16


def test_a_missing_part_is_an_error_naming_it(tmp_path: Path) -> None:
    trainer, model_cls = tiny(tmp_path, max_steps=2)
    trainer.fit(model_cls())
    path = tmp_path / "partial.ckpt"
    trainer.save_checkpoint(str(path))
    state = torch.load(path, weights_only=True)
    del state["optimizer_states"]
    state["loops"]["fit_loop"]["finished"] = False  # saved after fit: resumable if not finished
    torch.save(state, path)
    again, _ = tiny(tmp_path / "again", max_steps=4)
    with pytest.raises(UserError, match=r"lacks \['optimizer_states'\]"):
        again.fit(model_cls(), ckpt_path=str(path))


def test_a_weights_only_file_cannot_resume_training(tmp_path: Path) -> None:
    trainer, model_cls = tiny(tmp_path, max_steps=2)
    trainer.fit(model_cls())
    path = tmp_path / "weights.ckpt"
    trainer.save_checkpoint(str(path), weights_only=True)
    again, _ = tiny(tmp_path / "again", max_steps=4)
    with pytest.raises(UserError, match="weights only"):
        again.fit(model_cls(), ckpt_path=str(path))


def test_adding_a_part_is_one_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new part saves itself into the checkpoint and gets its state back on resume."""

    class Counter:
        def __init__(self) -> None:
            self.value, self.loaded = 7, None

        def state_dict(self) -> dict:
            return {"value": self.value}

        def load_state_dict(self, state: dict, /) -> None:
            self.loaded = state

    counter = Counter()
    parts = trainer_state.checkpoint_parts
    monkeypatch.setattr(trainer_state, "checkpoint_parts",
                        lambda trainer, source="", **kw: {**parts(trainer, source, **kw),
                                                          "counter": counter})  # fmt: skip
    path = tmp_path / "with_counter.ckpt"
    trainer, model_cls = tiny(tmp_path, max_steps=3, callbacks=[SaveAt(2, path)])
    trainer.fit(model_cls())
    assert torch.load(path, weights_only=True)["counter"] == {"value": 7}
    again, _ = tiny(tmp_path / "again", max_steps=3)
    again.fit(model_cls(), ckpt_path=str(path))
    assert counter.loaded == {"value": 7}


class SignalOnce(Callback):
    """Sends this process SIGUSR2 after batch `at` (what SLURM sends before preempting)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            os.kill(os.getpid(), signal.SIGUSR2)


def test_a_preemption_signal_raises_requeue_requested_after_checkpointing(tmp_path: Path) -> None:
    trainer, model_cls = tiny(tmp_path, max_steps=10, callbacks=[SignalOnce(at=4)])
    with pytest.raises(RequeueRequested) as raised:
        trainer.fit(model_cls())
    assert raised.value.signal_name == "SIGUSR2"
    assert raised.value.checkpoint is not None and Path(raised.value.checkpoint).is_file()
    assert trainer.global_step == 4
    resumed, model_cls = tiny(tmp_path, max_steps=10)  # the requeued job: same run dir
    resumed.fit(model_cls(), ckpt_path="last")
    assert resumed.loop.resumes == 1 and resumed.global_step == 10


def test_attributes_are_declared_in_init(tmp_path: Path) -> None:
    """No attribute appears later: what fit/validate/test use is typed in __init__."""
    trainer, model_cls = tiny(tmp_path, max_steps=2)
    declared = set(vars(trainer))
    model = model_cls()
    trainer.fit(model)
    trainer.validate(model)
    trainer.test(model)
    assert set(vars(trainer)) == declared


class EveryHook(Callback):
    """Records every hook the trainer calls."""

    def __init__(self) -> None:
        self.called: set[str] = set()


for _name in HOOKS:
    setattr(EveryHook, _name, lambda self, *args, _name=_name: self.called.add(_name))


def test_the_trainer_dispatches_the_base_class_hooks(tmp_path: Path) -> None:
    assert "on_test_batch_end" in HOOKS and "state_dict" not in HOOKS
    recorder = EveryHook()
    trainer, model_cls = tiny(tmp_path, max_epochs=1, callbacks=[recorder])
    model = model_cls()
    trainer.fit(model)
    trainer.save_checkpoint(str(tmp_path / "x.ckpt"))
    trainer.test(model)
    # All but the hooks of a failure, of a resume and of predict (none happened here).
    predict = {name for name in HOOKS if "predict" in name}
    assert recorder.called == set(HOOKS) - {"on_exception", "on_load_checkpoint"} - predict
