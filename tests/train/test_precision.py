"""Precision policies through the real Trainer on CPU: fp16 scaling, bf16 autocast, fp8 checks.

    python -m pytest tests/test_precision.py -q

CPU autocast supports float16 and bfloat16, so all of this runs without a GPU.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module, Trainer
from launcher.callbacks import Callback
from launcher.errors import UserError
from launcher.train.precision import MixedPrecision, Precision, build_precision, normalize_precision

QUIET = dict(logger=False, enable_progress_bar=False)
CPU = torch.device("cpu")


def data(n: int = 32) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, x.sum(dim=1, keepdim=True))


class Net(Module):
    """A linear model whose loss is multiplied by inf on `poison_step` (an overflow)."""

    def __init__(self, poison_step: int | None = None, n: int = 32, loss_factor: float = 1e-3):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(8, 1)
        # Small losses keep fp16 gradients x 65536 (the initial scale) finite, so only the
        # poisoned step overflows.
        self.poison_step, self.n, self.loss_factor = poison_step, n, loss_factor
        self.matmul_dtypes: list[torch.dtype] = []
        self.param_dtypes: list[torch.dtype] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        self.matmul_dtypes.append(out.dtype)
        self.param_dtypes.extend(p.dtype for p in self.parameters())
        loss = self.loss_factor * F.mse_loss(out.float(), y)
        if self.global_step == self.poison_step:
            loss = loss * math.inf
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.01)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def train_dataloader(self):
        return DataLoader(data(self.n), batch_size=8)


class StepWatcher(Callback):
    """Per batch: parameters before/after, the scaler's scale after, the lr after."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._before = [p.detach().clone() for p in module.parameters()]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        after = [p.detach().clone() for p in module.parameters()]
        self.rows.append({
            "changed": any(not torch.equal(a, b) for a, b in zip(after, self._before, strict=True)),
            "scale": trainer.precision.scaler.get_scale(),
            "step": trainer.global_step,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
        })  # fmt: skip


def test_fp16_skips_the_step_on_inf_and_checkpoints_the_scaler(tmp_path):
    watcher = StepWatcher()
    trainer = Trainer(max_epochs=1, precision="16-mixed", callbacks=[watcher],
                      default_root_dir=tmp_path, **QUIET)  # fmt: skip
    assert isinstance(trainer.precision.scaler, torch.amp.GradScaler)
    trainer.fit(Net(poison_step=2))
    rows = watcher.rows
    assert [r["changed"] for r in rows] == [True, True, False, True]  # step 2 was skipped
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # ...but the global step advanced
    assert rows[2]["scale"] == rows[1]["scale"] / 2  # the scaler backed off
    assert rows[3]["scale"] == rows[2]["scale"]
    # A skipped step does not advance the step-interval schedule: 3 halvings, not 4.
    assert [r["lr"] for r in rows] == [0.005, 0.0025, 0.0025, 0.00125]

    path = tmp_path / "manual.ckpt"
    trainer.save_checkpoint(str(path))
    scaler_state = torch.load(path, weights_only=True)["launcher_precision"]["scaler"]
    assert scaler_state["scale"] == rows[-1]["scale"]
    assert scaler_state == trainer.precision.scaler.state_dict()


def test_fp16_scaler_state_round_trips():
    source = build_precision("16-mixed", CPU)
    source.scaler.scale(torch.ones(1))  # creates the scale lazily
    source.scaler.update(1024.0)
    target = build_precision(16, CPU)
    target.load_state_dict(source.state_dict())
    assert target.scaler.get_scale() == 1024.0
    with pytest.raises(KeyError):
        build_precision("bf16", CPU).load_state_dict({"scaler": source.scaler.state_dict()})


@pytest.mark.parametrize("precision", ["32-true", 32, "bf16-mixed", "bf16"])
def test_no_grad_scaler_outside_fp16(precision):
    policy = Trainer(precision=precision, **QUIET).precision
    assert getattr(policy, "scaler", None) is None
    assert policy.state_dict() == {}


def test_bf16_autocast_on_cpu_keeps_fp32_parameters(tmp_path):
    model = Net()
    trainer = Trainer(max_epochs=1, precision="bf16-mixed", default_root_dir=tmp_path, **QUIET)
    trainer.fit(model)
    assert model.matmul_dtypes == [torch.bfloat16] * 4
    assert set(model.param_dtypes) == {torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_fp32_runs_without_autocast(tmp_path):
    model = Net()
    Trainer(max_epochs=1, precision=32, default_root_dir=tmp_path, **QUIET).fit(model)
    assert model.matmul_dtypes == [torch.float32] * 4


def test_fp16_autocast_on_cpu(tmp_path):
    model = Net()
    Trainer(max_epochs=1, precision=16, default_root_dir=tmp_path, **QUIET).fit(model)
    assert model.matmul_dtypes == [torch.float16] * 4


@pytest.mark.parametrize("precision", ["fp8", 8, "8-mixed"])
def test_fp8_on_cpu_is_a_user_error(precision):
    with pytest.raises(UserError, match=r"compute capability >= 8\.9"):
        Trainer(precision=precision, **QUIET)


@pytest.mark.parametrize("precision", ["fp17", "bfloat16", 4])
def test_unknown_precision_is_a_user_error_listing_valid_ones(precision):
    with pytest.raises(UserError) as err:
        Trainer(precision=precision, **QUIET)
    assert "16-mixed" in str(err.value) and "bf16-mixed" in str(err.value)


def test_lightning_spellings_normalise():
    assert [normalize_precision(v) for v in (32, "32", 16, "16", "bf16", 8, None)] == [
        "32-true", "32-true", "16-mixed", "16-mixed", "bf16-mixed", "fp8", "32-true",
    ]  # fmt: skip
    assert type(build_precision(32, CPU)) is Precision
    assert isinstance(build_precision("bf16", CPU), MixedPrecision)


class GradProbe(Callback):
    """Gradient norm seen by `on_before_optimizer_step`, and each step's update norm."""

    def __init__(self) -> None:
        self.grad_norms: list[float] = []
        self.update_norms: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._before = torch.cat([p.detach().flatten().clone() for p in module.parameters()])

    def on_before_optimizer_step(self, trainer, module, optimizer):
        grads = [p.grad.flatten() for p in module.parameters()]
        self.grad_norms.append(torch.cat(grads).float().norm().item())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        after = torch.cat([p.detach().flatten() for p in module.parameters()])
        self.update_norms.append((after - self._before).norm().item())


def test_fp16_clips_the_unscaled_gradients(tmp_path):
    # SGD lr=1: a step's update is the clipped gradient. Clipping the still-scaled gradients
    # would shrink the update by the scale (65536x) instead.
    probe = GradProbe()
    model = Net(n=128, loss_factor=1.0)
    model.configure_optimizers = lambda: torch.optim.SGD(model.parameters(), lr=1.0)
    Trainer(max_epochs=1, precision="16-mixed", gradient_clip_val=0.5, callbacks=[probe],
            default_root_dir=tmp_path, **QUIET).fit(model)  # fmt: skip
    taken = [(g, u) for g, u in zip(probe.grad_norms, probe.update_norms, strict=True) if u > 0]
    # The first steps may overflow while the scaler backs off; clipping must act on others.
    assert sum(g > 0.5 for g, _ in taken) >= 3
    for grad_norm, update_norm in taken:
        assert update_norm == pytest.approx(min(grad_norm, 0.5), rel=1e-3)


def test_on_before_optimizer_step_sees_unscaled_gradients(tmp_path):
    # Lightning unscales fp16 gradients before this hook (users log gradient norms there).
    norms = {}
    for precision in ("32-true", "16-mixed"):
        probe = GradProbe()
        Trainer(max_epochs=1, precision=precision, callbacks=[probe],
                default_root_dir=tmp_path / precision, **QUIET).fit(Net())  # fmt: skip
        norms[precision] = probe.grad_norms[0]
    assert norms["16-mixed"] == pytest.approx(norms["32-true"], rel=1e-2)


# -- Lightning's *-true precisions: the parameters themselves in the dtype ---------------------
class DtypeProbe(Module):
    """Records the dtypes of parameters, inputs and tensors created inside the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(8, 1)
        self.seen: dict[str, set[str]] = {}

    def _record(self, stage: str, x: torch.Tensor, out: torch.Tensor) -> None:
        made = torch.zeros(1)  # default dtype while the forward runs
        for key, dtype in [("param", self.net.weight.dtype), ("input", x.dtype),
                           ("created", made.dtype), ("output", out.dtype)]:  # fmt: skip
            self.seen.setdefault(f"{stage}_{key}", set()).add(str(dtype))

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        self._record("train", x, out)
        return F.mse_loss(out, y)

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        self._record("val", x, self.net(x))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(data(16), batch_size=8)

    def val_dataloader(self):
        return DataLoader(data(8), batch_size=8)


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [
        ("bf16-true", "torch.bfloat16"),
        ("16-true", "torch.float16"),
        ("64-true", "torch.float64"),
        ("64", "torch.float64"),
    ],  # fmt: skip
)
def test_true_precisions_train_and_validate_in_that_dtype(tmp_path, precision, dtype):
    model = DtypeProbe()
    trainer = Trainer(max_epochs=1, precision=precision, default_root_dir=tmp_path, **QUIET)
    trainer.fit(model)
    want = {dtype}
    assert all(v == want for v in model.seen.values()), model.seen
    assert set(model.seen) == {f"{s}_{k}" for s in ("train", "val")
                               for k in ("param", "input", "created", "output")}  # fmt: skip
    assert torch.get_default_dtype() == torch.float32  # restored after each forward
    # validate on a fresh fp32 model converts it too, as Lightning's strategy setup does
    fresh = DtypeProbe()
    Trainer(precision=precision, default_root_dir=tmp_path, **QUIET).validate(fresh)
    assert fresh.seen["val_param"] == want and fresh.seen["val_input"] == want


def test_true_precision_leaves_integer_inputs_alone():
    from launcher.train.precision import cast_floats

    batch = {"x": torch.ones(2), "ids": torch.arange(3), "pair": (torch.ones(1), "text")}
    out = cast_floats(batch, torch.bfloat16)
    assert out["x"].dtype == torch.bfloat16 and out["ids"].dtype == torch.int64
    assert out["pair"][0].dtype == torch.bfloat16 and out["pair"][1] == "text"


def test_transformer_engine_is_refused_with_the_alternative():
    with pytest.raises(UserError, match="Transformer Engine is not integrated; use fp8"):
        Trainer(precision="transformer-engine", **QUIET)
