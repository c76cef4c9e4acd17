"""Trainer(compile=True | "blocks"): torch.compile with inductor on the CPU.

A cold inductor compile of the blocks recipe takes ~75 s on this machine, a warm one (the FX
graph cache in /tmp/torchinductor_*) ~5 s; each test compiles the same graphs, so only the
first one run pays the cold compile.
"""

from __future__ import annotations

import copy
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from launcher import Callback, Module, Trainer
from launcher.errors import RequeueRequested, UserError
from launcher.train.compile import compiled_modules, parse_compile, unwrap_compiled
from tests.resume_harness import assert_bitwise_equal

BLOCKS = str(Path(__file__).resolve().parents[1] / "recipes" / "blocks.py")
sys.path.insert(0, str(Path(BLOCKS).parent))
from blocks import TRAINER, BlocksModel  # noqa: E402

# 92 samples in batches of 8: the last batch of each epoch holds 4.
N_TRAIN = 92


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()
    if torch.distributed.is_initialized():  # a group of one under FSDP
        torch.distributed.destroy_process_group()


class GraphCount(Callback):
    """The graphs Dynamo compiled so far, at each training epoch's end."""

    def __init__(self) -> None:
        self.at_epoch_end: list[int] = []

    def on_train_epoch_end(self, trainer, module) -> None:
        self.at_epoch_end.append(counters["stats"]["unique_graphs"])


def _fit(tmp_path: Path, name: str, hparams: dict | None = None, **kwargs) -> BlocksModel:
    torch.manual_seed(0)
    model = BlocksModel(n_train=N_TRAIN, **(hparams or {}))
    trainer = Trainer(**{**TRAINER, "max_epochs": 2}, logger=False, seed=1,
                      default_root_dir=str(tmp_path / name), **kwargs)  # fmt: skip
    trainer.fit(model)
    return model


@pytest.mark.slow
def test_compiled_training_matches_eager_without_graph_breaks_or_recompiles(
    tmp_path: Path,
) -> None:
    """Up to ~80 s on a cold inductor cache (the first compile of these graphs), ~12 s warm."""
    graphs = GraphCount()
    # No sanity check: its batch of 16 would make Dynamo's automatic dynamic shapes treat
    # dim 0 as dynamic anyway; here the first graph sees only batches of 8 until the last.
    compiled = _fit(tmp_path, "compiled", compile=True, callbacks=[graphs],
                    num_sanity_val_steps=0)  # fmt: skip
    assert compiled_modules(compiled) == [""]
    # self.log runs in the eager training_step, outside the compiled forward: no breaks.
    assert dict(counters["graph_break"]) == {}
    # One graph for training, one for validation (inference mode); the last, smaller batch
    # and the second epoch compile nothing more (dim 0 is dynamic).
    assert graphs.at_epoch_end == [2, 2]
    eager = _fit(tmp_path, "eager", num_sanity_val_steps=0)
    state, expected = compiled.state_dict(), eager.state_dict()
    assert list(state) == list(expected)  # the same keys: no `_orig_mod.`
    for key in expected:
        torch.testing.assert_close(state[key], expected[key], rtol=1e-4, atol=1e-5)
    saved = torch.load(compiled.trainer.checkpoint_callback.best_model_path, weights_only=True)
    assert list(saved["state_dict"]) == list(expected)


class SignalAt(Callback):
    """Sends this process SIGUSR2 after step `at` (what SLURM sends before preempting)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            os.kill(os.getpid(), signal.SIGUSR2)


@pytest.mark.slow
def test_compiled_blocks_resume_bitwise_like_an_uninterrupted_compiled_run(
    tmp_path: Path,
) -> None:
    """Three short fits of the compiled blocks (~15 s warm; the first compile ~75 s cold)."""
    expected = _fit(tmp_path, "reference", compile="blocks")
    assert compiled_modules(expected) == ["blocks.0", "blocks.1", "blocks.2"]
    assert dict(counters["graph_break"]) == {}
    run_dir = str(tmp_path / "interrupted")
    with pytest.raises(RequeueRequested):  # mid-epoch 0
        _fit(tmp_path, "x", compile="blocks", run_dir=run_dir, callbacks=[SignalAt(5)])
    torch.manual_seed(123)  # the resume must not depend on the fresh model's init
    model = BlocksModel(n_train=N_TRAIN)
    trainer = Trainer(**{**TRAINER, "max_epochs": 2}, logger=False, seed=1, run_dir=run_dir,
                      compile="blocks")  # fmt: skip
    trainer.fit(model, ckpt_path="last")
    assert trainer.loop.resumes == 1
    assert_bitwise_equal(expected.state_dict(), model.state_dict(), "model")
    assert_bitwise_equal(expected.trainer.optimizers[0].state_dict(),
                         trainer.optimizers[0].state_dict(), "optimizer")  # fmt: skip


def test_compile_settings_that_cannot_work_are_user_errors(tmp_path: Path) -> None:
    assert [parse_compile(v) for v in (True, "blocks", False, None, "model", "false")] == [
        "model", "blocks", None, None, "model", None
    ]  # fmt: skip
    with pytest.raises(UserError, match="compile='blocks'"):
        Trainer(compile="yes", logger=False)

    class NoForward(Module):  # training_step calls its layer itself
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(2, 1)

    with pytest.raises(UserError, match="define forward"):
        Trainer(compile=True, logger=False, default_root_dir=str(tmp_path)).fit(NoForward())
    with pytest.raises(UserError, match="no nn.ModuleList"):
        Trainer(compile="blocks", logger=False, default_root_dir=str(tmp_path)).fit(NoForward())
    with pytest.raises(UserError, match="use compile='blocks'"):
        _fit(tmp_path, "fsdp", compile=True, strategy="fsdp")
    # fp8 (torchao float8, which wants compile) needs a GPU >= sm89 and torchao: refused here.
    with pytest.raises(UserError, match="precision fp8 needs"):
        Trainer(compile=True, precision="fp8", logger=False)


@pytest.mark.slow
def test_two_process_ddp_compiles_the_forward_inside_ddp(tmp_path: Path, monkeypatch) -> None:
    """One two-process launch (`--compile model`), the one proof of the order under DDP:
    ~200 s on a cold inductor cache (each rank compiles the split graphs), ~75 s warm.

    The forward is compiled while DDP's forward runs, so Dynamo's DDPOptimizer splits it at
    DDP's bucket boundaries (the all-reduces overlap the backward); it logs its buckets."""
    from tests.resume_harness import final_state, make_spec, start_backend

    monkeypatch.setenv("TORCH_LOGS", "torch._dynamo.backends.distributed")
    spec = make_spec(tmp_path, "ddp", recipe=BLOCKS, devices_per_node=2, accelerator="cpu",
                     compile="model", overrides={"n_train": str(N_TRAIN),
                                                 "trainer.max_epochs": "1",
                                                 # no validation: one graph to compile
                                                 "trainer.limit_val_batches": "0"})  # fmt: skip
    log = tmp_path / "ddp.log"
    assert start_backend(spec, log).wait(timeout=300) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "DDPOptimizer used bucket cap" in text, text[-3000:]  # the log shows rank 0's
    state = final_state(spec)
    assert state["global_step"] == 6  # 46 samples a rank in batches of 8
    assert not any("_orig_mod" in key for key in state["state_dict"])


def test_a_torch_compiled_module_runs_compiled_as_lightning_runs_it(tmp_path: Path) -> None:
    """`trainer.fit(torch.compile(model))` (Lightning unwraps it, `from_compiled`): the model
    trains with its forward compiled, with the user's compile settings (here the cheap
    "eager" backend), and is the `lightning_module`."""
    model = BlocksModel()
    trainer = Trainer(**TRAINER, logger=False, max_steps=2, default_root_dir=str(tmp_path))
    trainer.fit(torch.compile(model, backend="eager"))
    assert trainer.lightning_module is model and compiled_modules(model) == [""]
    assert counters["stats"]["unique_graphs"] >= 1  # Dynamo traced the forward
    assert dict(counters["graph_break"]) == {}
    (metrics,) = trainer.validate(torch.compile(model, backend="eager"))
    assert "val_loss" in metrics
    # A deep copy (StochasticWeightAveraging's average) runs its own weights, compiled too.
    model = unwrap_compiled(torch.compile(BlocksModel(), backend="eager"))
    copied = copy.deepcopy(model)
    with torch.no_grad():
        for p in copied.parameters():
            p.zero_()
    tokens = torch.zeros(2, 8, dtype=torch.long)
    assert compiled_modules(copied) == [""]
    assert not torch.equal(copied(tokens), model(tokens))
    assert torch.equal(copied(tokens), torch.zeros(2, 8, 32))
