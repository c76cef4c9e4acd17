"""Manual optimization (`automatic_optimization = False`), driven by the real Trainer.

    python -m pytest tests/train/test_manual_optimization.py -q -m "not slow"

The GAN is recipes/gan.py; what Lightning itself does with the same kind of recipe is
compared in tests/lightning_compat/test_manual_vs_lightning.py.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module, Trainer
from launcher.callbacks import Callback
from launcher.cli.recipe import load_recipe
from launcher.errors import REQUEUE_EXIT_CODE, UserError
from launcher.train.manual import LightningOptimizer
from tests.resume_harness import (
    REPO,
    assert_bitwise_equal,
    final_state,
    kill_tree,
    made_progress,
    make_spec,
    start_backend,
    start_worker,
    wait_for,
    worker_env,
    worker_pids,
)
from tests.train.test_precision import fp16_trainer

GAN_RECIPE = REPO / "recipes" / "gan.py"
QUIET = dict(logger=False, enable_progress_bar=False, enable_checkpointing=False,
             enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip


def gan_cls() -> type[Module]:
    return load_recipe(str(GAN_RECIPE)).module_cls


class Losses(Callback):
    """g_loss / d_loss after every batch, and the global step then."""

    def __init__(self) -> None:
        self.g: list[float] = []
        self.d: list[float] = []
        self.steps: list[int] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.g.append(float(trainer.callback_metrics["g_loss"]))
        self.d.append(float(trainer.callback_metrics["d_loss"]))
        self.steps.append(trainer.global_step)


def test_gan_recipe_trains_on_one_process_both_losses_moving(tmp_path: Path) -> None:
    losses = Losses()
    model = gan_cls()(n_samples=256, batch_size=32)  # 8 batches per epoch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(max_epochs=3, callbacks=[losses], seed=0, default_root_dir=str(tmp_path),
                      **QUIET)  # fmt: skip
    trainer.fit(model)
    # Two opt.step() per batch, each a global step (Lightning's count).
    assert losses.steps == [2 * (i + 1) for i in range(24)]
    assert trainer.global_step == 48 and trainer.loop.batches_stepped == 24
    for values in (losses.g, losses.d):
        assert max(values) - min(values) > 0.01, values
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    # The recipe steps its two schedulers by hand once per epoch; the Trainer steps none.
    for opt in trainer.optimizers:
        assert opt.param_groups[0]["lr"] == pytest.approx(2e-3 * 0.9**3)


class Passive(Module):
    """Manual optimization that never steps: the Trainer must not touch the gradients."""

    def __init__(self, returns: str = "tensor") -> None:
        super().__init__()
        self.automatic_optimization = False
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 1)
        self.returns = returns
        self.hooks: list[str] = []

    def training_step(self, batch):  # no batch_idx, as Lightning allows
        (x,) = batch
        loss = self.net(x).pow(2).mean()
        return {"tensor": loss, "dict": {"loss": loss, "extra": 1}, "none": None,
                "text": "loss"}[self.returns]  # fmt: skip

    def on_before_zero_grad(self, optimizer) -> None:
        self.hooks.append("on_before_zero_grad")

    def on_before_backward(self, loss) -> None:
        self.hooks.append("on_before_backward")

    def on_before_optimizer_step(self, optimizer) -> None:
        self.hooks.append("on_before_optimizer_step")

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.hooks.append(f"outputs {sorted(outputs)}")
        if "loss" in outputs:
            assert outputs["loss"].grad_fn is None  # detached, as Lightning's ManualResult

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=1.0)
        every_step = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return [opt], [{"scheduler": every_step, "interval": "step"}]

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(8, 4)), batch_size=4)


@pytest.mark.parametrize("returns", ["tensor", "dict", "none"])
def test_the_trainer_touches_no_gradient_step_or_scheduler(tmp_path: Path, returns: str) -> None:
    model = Passive(returns)
    before = model.net.weight.detach().clone()
    trainer = Trainer(max_epochs=2, default_root_dir=str(tmp_path), **QUIET)
    trainer.fit(model)
    assert torch.equal(model.net.weight, before) and model.net.weight.grad is None
    assert trainer.global_step == 0 and trainer.optimizers[0].param_groups[0]["lr"] == 1.0
    expected = {"tensor": ["loss"], "dict": ["extra", "loss"], "none": []}[returns]
    assert model.hooks == [f"outputs {expected}"] * 4


def test_training_step_returning_something_else_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="must either return a Tensor or have no return"):
        Trainer(max_epochs=1, default_root_dir=str(tmp_path), **QUIET).fit(Passive("text"))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"gradient_clip_val": 0.5}, r"Automatic gradient clipping is not supported for manual "
                                     r"optimization. Remove `Trainer\(gradient_clip_val=0.5\)`"),
        ({"accumulate_grad_batches": 2}, r"Automatic gradient accumulation is not supported for "
         r"manual optimization. Remove `Trainer\(accumulate_grad_batches=2\)`"),
    ],
)  # fmt: skip
def test_clipping_or_accumulation_with_manual_optimization_is_lightnings_error(
    tmp_path: Path, setting: dict, message: str
) -> None:
    model = Passive()
    with pytest.raises(UserError, match=message):
        Trainer(max_epochs=1, default_root_dir=str(tmp_path), **QUIET, **setting).fit(model)
    assert model.hooks == []  # raised before anything ran


class Regressor(Module):
    """The same training written for automatic and for manual optimization."""

    def __init__(self, manual: bool, clip: float | None = None) -> None:
        super().__init__()
        self.automatic_optimization = not manual
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                       torch.nn.Linear(8, 1))  # fmt: skip
        self.clip = clip
        self.norms: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        if self.automatic_optimization:
            return loss
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        if self.clip:
            self.clip_gradients(opt, gradient_clip_val=self.clip, gradient_clip_algorithm="norm")
        opt.step()
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    def on_train_epoch_end(self) -> None:
        if not self.automatic_optimization:
            self.lr_schedulers().step()

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(48, 4, generator=g)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8, shuffle=True)


def test_manual_steps_equal_automatic_optimization_bitwise(tmp_path: Path) -> None:
    models = {}
    for manual in (False, True):
        model = models[manual] = Regressor(manual)
        trainer = Trainer(max_epochs=3, seed=0, default_root_dir=str(tmp_path), **QUIET)
        trainer.fit(model)
        assert trainer.global_step == 18
        assert trainer.optimizers[0].param_groups[0]["lr"] == 0.05 * 0.5**3
    assert_bitwise_equal(models[False].state_dict(), models[True].state_dict())
    assert models[False].norms == models[True].norms  # the hook saw the same gradients


def test_clip_gradients_by_hand(tmp_path: Path) -> None:
    model = Regressor(manual=True, clip=0.01)
    Trainer(max_epochs=1, seed=0, default_root_dir=str(tmp_path), **QUIET).fit(model)
    assert len(model.norms) == 6 and all(n <= 0.01 * (1 + 1e-5) for n in model.norms)
    with pytest.raises(UserError, match="Please use only one of them"):
        Trainer(max_epochs=1, gradient_clip_val=0.5, **QUIET).fit(_ClipsInHook(manual=False))


class _ClipsInHook(Regressor):
    def on_before_optimizer_step(self, optimizer) -> None:
        self.clip_gradients(optimizer, gradient_clip_val=0.1)  # conflicts with the Trainer's


def test_manual_backward_needs_manual_optimization(tmp_path: Path) -> None:
    class Automatic(Regressor):
        def training_step(self, batch, batch_idx):
            self.manual_backward(super().training_step(batch, batch_idx))

    with pytest.raises(UserError, match="to use manual_backward, please disable automatic"):
        Trainer(max_epochs=1, default_root_dir=str(tmp_path), **QUIET).fit(Automatic(False))


class Probe(Module):
    """Checks the optimizer wrapper, toggling and closures from inside a real fit."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.a, self.b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        self.frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
        self.events: list[str] = []
        self.checked = False

    def training_step(self, batch, batch_idx):
        (x,) = batch
        first, second = self.optimizers()
        assert self.optimizers() == [first, second]  # the same wrappers every call
        assert isinstance(first, LightningOptimizer) and isinstance(first, torch.optim.SGD)
        assert first.optimizer is self.trainer.optimizers[0]
        assert first.param_groups is first.optimizer.param_groups and first.state is not None
        assert self.optimizers(use_pl_optimizer=False) == self.trainer.optimizers
        with first.toggle_model():
            assert [p.requires_grad for p in (self.a.weight, self.b.weight, self.frozen)] == [
                True, False, False]  # fmt: skip
        assert [p.requires_grad for p in (self.a.weight, self.b.weight, self.frozen)] == [
            True, True, False]  # restored, the frozen one still frozen  # fmt: skip
        step = self.global_step

        def closure():
            self.events.append("closure")
            loss = (self.a(x) + self.b(x)).pow(2).mean()
            second.zero_grad()
            self.manual_backward(loss)
            return loss

        returned = second.step(closure=closure)
        assert isinstance(returned, torch.Tensor)  # SGD.step returns the closure's loss
        assert self.global_step == step + 1
        self.checked = True

    def on_before_backward(self, loss) -> None:
        self.events.append("on_before_backward")

    def on_after_backward(self) -> None:
        self.events.append("on_after_backward")

    def on_before_optimizer_step(self, optimizer) -> None:
        self.events.append("on_before_optimizer_step")

    def configure_optimizers(self):
        return (torch.optim.SGD(self.a.parameters(), lr=0.1),
                torch.optim.SGD([*self.b.parameters(), self.frozen], lr=0.1))  # fmt: skip

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(2, 2)), batch_size=2)


def test_optimizer_wrapper_toggling_and_closure_order(tmp_path: Path) -> None:
    model = Probe()
    trainer = Trainer(max_epochs=1, default_root_dir=str(tmp_path), **QUIET)
    trainer.fit(model)
    assert model.checked and trainer.global_step == 1
    # Lightning's order: the closure (backward) runs inside step, before the step hook.
    assert model.events == ["closure", "on_before_backward", "on_after_backward",
                            "on_before_optimizer_step"]  # fmt: skip


class Scaled(Regressor):
    """Records the gradient norm after backward (scaled) and before the step (unscaled)."""

    def __init__(self) -> None:
        super().__init__(manual=True)
        self.after_backward: list[float] = []

    def on_after_backward(self) -> None:
        self.after_backward.append(float(self.net[0].weight.grad.norm()))

    def on_before_optimizer_step(self, optimizer) -> None:
        self.norms.append(float(self.net[0].weight.grad.norm()))


def test_fp16_manual_backward_scales_and_the_step_unscales(tmp_path: Path) -> None:
    model = Scaled()
    # "16-mixed" on CPU trains in bf16 (as Lightning); the fp16 policy a GPU gets, set by hand:
    trainer = fp16_trainer(max_epochs=1, accelerator="cpu", seed=0,
                           default_root_dir=str(tmp_path), **QUIET)  # fmt: skip
    trainer.fit(model)
    assert trainer.global_step == 6  # a step the scaler skips (inf/NaN) counts, as in Lightning
    ratios = [scaled / true for scaled, true in zip(model.after_backward, model.norms, strict=True)
              if torch.isfinite(torch.tensor(scaled))]  # fmt: skip
    # Scaled by the GradScaler's scale (2**16 at first, halved on overflow) and unscaled again.
    assert ratios and all(r == pytest.approx(2.0 ** round(torch.tensor(r).log2().item()),
                                             rel=1e-3) and r > 1000 for r in ratios)  # fmt: skip
    assert ratios[-1] == pytest.approx(
        trainer.precision_plugin.state_dict()["scaler"]["scale"], rel=1e-3
    )


def test_steps_without_batch_idx_under_automatic_optimization(tmp_path: Path) -> None:
    class NoIndex(Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch):
            x, y = batch
            loss = F.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch):
            self.log("val_loss", F.mse_loss(self.net(batch[0]), batch[1]))

        def test_step(self, batch):
            self.log("test_loss", F.mse_loss(self.net(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

        def train_dataloader(self):
            x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
            return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)

        val_dataloader = test_dataloader = train_dataloader

    model = NoIndex()
    trainer = Trainer(max_epochs=3, default_root_dir=str(tmp_path), **QUIET)
    first = trainer.validate(model)[0]["val_loss"]
    trainer.fit(model)
    assert trainer.global_step == 12 and float(trainer.callback_metrics["val_loss"]) < first
    assert trainer.test(model)[0]["test_loss"] == pytest.approx(
        float(trainer.callback_metrics["val_loss"]))  # fmt: skip


# -- several processes, preemption and the command line (subprocesses) ----------------------

SLOW_GAN = (
    "\n\nclass SlowGAN(GAN):\n"
    "    def training_step(self, batch, batch_idx):\n"
    "        import time\n"
    "        time.sleep(0.04)  # gives the signal time to land mid-epoch\n"
    "        return super().training_step(batch, batch_idx)\n"
)
# Long enough for two signals to land mid-run, well before the last step boundary (a signal
# after it finds the handlers restored).
GAN_SETTINGS = {"n_samples": "1280", "batch_size": "16", "trainer.max_epochs": "2",
                "trainer.checkpoint_every_n_steps": "3", "trainer.log_every_n_steps": "1",
                "trainer.signal_sync_every_n_steps": "2",
                "trainer.enable_progress_bar": "false"}  # fmt: skip


def slow_gan(tmp_path: Path) -> str:
    recipe = tmp_path / "slow_gan.py"
    recipe.write_text(GAN_RECIPE.read_text() + SLOW_GAN)
    return str(recipe)


def _compare(reference: dict, resumed: dict) -> None:
    for key in ("state_dict", "optimizer_states", "lr_schedulers", "launcher_per_rank"):
        assert_bitwise_equal(reference[key], resumed[key], key)
    assert reference["global_step"] == resumed["global_step"]


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_sigterm_mid_epoch_resumes_bitwise(tmp_path: Path, processes: int) -> None:
    recipe = slow_gan(tmp_path)
    fields = dict(recipe=recipe, module="SlowGAN", overrides=GAN_SETTINGS)
    if processes > 1:
        fields.update(devices_per_node=processes, accelerator="cpu")
    start = start_backend if processes > 1 else start_worker
    reference = make_spec(tmp_path / "ref", "ref", **fields)
    proc = start(reference, tmp_path / "ref.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    expected = final_state(reference)
    # 1280 samples / (16 x processes) per batch, 2 epochs, 2 optimizer steps per batch.
    assert expected["global_step"] == 2 * 2 * 1280 // (16 * processes)

    spec = make_spec(tmp_path / "out", "signalled", **fields)
    log = tmp_path / "signalled.log"
    rng = random.Random(processes)
    requeues = 0
    for _attempt in range(8):
        proc = start(spec, log)
        if requeues < 2 and made_progress(spec, proc):
            wait_for(lambda p=proc: p.poll() is not None, rng.uniform(0.0, 0.2))
            pids = worker_pids(proc).values() if processes > 1 else [proc.pid]
            for pid in pids:  # like SLURM: every task gets the signal
                os.kill(pid, signal.SIGTERM)
            assert proc.wait(timeout=120) == REQUEUE_EXIT_CODE, log.read_text()[-3000:]
            requeues += 1
            continue
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
        break
    assert requeues == 2 and log.read_text().count("received SIGTERM") >= 2
    resumed = final_state(spec)
    assert resumed["loops"]["fit_loop"]["resumes"] == 2
    _compare(expected, resumed)


@pytest.mark.slow
def test_two_processes_average_gradients_like_ddp(tmp_path: Path) -> None:
    """The manual twin of the tiny recipe on 2 gloo processes ends where DDP's automatic
    optimization ends: `manual_backward` averaged the gradients over the ranks."""
    recipe = tmp_path / "manual_tiny.py"
    manual_tiny = (
        "\n\nclass ManualTiny(TinyModel):\n"
        "    def __init__(self, hidden: int = 32, lr: float = 0.05, batch_size: int = 8,\n"
        "                 n_train: int = 96, dropout: float = 0.1, num_workers: int = 0,\n"
        "                 step_sleep: float = 0.0):\n"
        "        super().__init__(hidden, lr, batch_size, n_train, dropout, num_workers,\n"
        "                         step_sleep)\n"
        "        self.automatic_optimization = False\n\n"
        "    def training_step(self, batch, batch_idx):\n"
        "        opt = self.optimizers()\n"
        "        opt.zero_grad()\n"
        "        self.manual_backward(super().training_step(batch, batch_idx))\n"
        "        opt.step()\n\n"
        "    def on_train_epoch_end(self):\n"
        "        self.lr_schedulers().step()\n"
    )
    recipe.write_text((REPO / "tests" / "recipes" / "tiny.py").read_text() + manual_tiny)
    settings = {"dropout": "0.0", "batch_size": "8", "trainer.max_epochs": "2",
                "trainer.enable_progress_bar": "false"}  # fmt: skip
    finals = {}
    for module in ("TinyModel", "ManualTiny"):
        spec = make_spec(tmp_path, module, recipe=str(recipe), module=module,
                         devices_per_node=2, accelerator="cpu", overrides=settings)  # fmt: skip
        log = tmp_path / f"{module}.log"
        assert start_backend(spec, log).wait(timeout=300) == 0, log.read_text()[-3000:]
        finals[module] = final_state(spec)
    automatic, manual = finals["TinyModel"], finals["ManualTiny"]
    assert automatic["global_step"] == manual["global_step"] == 12
    for key, value in automatic["state_dict"].items():
        torch.testing.assert_close(manual["state_dict"][key], value, rtol=1e-5, atol=1e-6)
    assert automatic["lr_schedulers"] == manual["lr_schedulers"]


def _start_cli(cwd: Path, *args: str) -> subprocess.Popen:
    """`launch ARGS --output-dir CWD/out` in its own session, as `launch_cli` runs it."""
    env = worker_env()
    return subprocess.Popen(
        [sys.executable, "-m", "launcher.cli.app", *args, "--output-dir", str(cwd / "out")],
        cwd=cwd, env=env, stdout=open(cwd / f"{args[-1]}.log", "ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


@pytest.mark.slow
def test_launch_two_processes_killed_mid_epoch_resumes_bitwise_with_one_mlflow_run(
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    from launcher.train.checkpoint_store import CheckpointManager

    recipe = slow_gan(tmp_path)
    sets = [arg for key, value in GAN_SETTINGS.items() for arg in ("--set", f"{key}={value}")]
    common = [recipe, "--module", "SlowGAN", "--accelerator", "cpu", "--devices", "2",
              "--seed", "7", "--experiment", "gan", *sets, "--name"]  # fmt: skip

    def resume_dir(name: str) -> Path:
        return tmp_path / "out" / "gan" / name / "checkpoints" / "resume"

    def newest(name: str) -> int:
        entries = CheckpointManager(str(resume_dir(name))).entries()
        return entries[-1]["step"] if entries else -1

    reference = _start_cli(tmp_path, *common, "reference")
    assert reference.wait(timeout=300) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    proc = _start_cli(tmp_path, *common, "killed")
    assert wait_for(lambda: newest("killed") >= 12 or proc.poll() is not None, 240)
    assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
    kill_tree(proc)  # the whole job dies at once, mid-epoch: CLI, agents and workers
    killed_at = newest("killed")
    assert 0 < killed_at < 80  # 40 batches, 80 global steps per epoch: inside the first
    proc = _start_cli(tmp_path, *common[:-1], "--resume", "auto", "--name", "killed")
    assert proc.wait(timeout=300) == 0, (tmp_path / "killed.log").read_text()[-3000:]
    assert "resumed from" in (tmp_path / "out" / "gan" / "killed" / "logs" / "rank0.log"
                              ).read_text()  # fmt: skip

    states = {}
    for name in ("reference", "killed"):
        _path, states[name] = CheckpointManager(str(resume_dir(name))).load_latest()
        assert states[name]["loops"]["fit_loop"]["finished"]
    _compare(states["reference"], states["killed"])
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("gan")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'killed'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "g_loss")]
    assert sorted(steps) == list(range(80))  # every batch logged once, none twice
