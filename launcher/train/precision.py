"""Precision policies: how the forward pass, backward pass and optimizer step run.

    precision = build_precision("bf16-mixed", device)
    with precision.forward_context():
        loss = module.training_step(batch, i)
    precision.backward(loss)
    precision.unscale(optimizer)          # before gradient clipping
    stepped = precision.optimizer_step(optimizer)

Only fp16 uses a `GradScaler`: bf16 has fp32's exponent range and needs no loss scaling.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import torch

from launcher.errors import UserError
from launcher.train.names import normalize_precision

_NO_OP = contextlib.nullcontext()  # reusable and reentrant
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)

__all__ = [
    "Float8Precision",
    "MixedPrecision",
    "Precision",
    "TruePrecision",
    "build_precision",
    "check_fp8_supported",
    "normalize_precision",
]


class Precision:
    """Full fp32: no autocast, no scaling."""

    name = "32-true"

    def convert_module(self, module: ModuleT) -> ModuleT:
        """The model to train (fp8 swaps its Linear layers in place)."""
        return module

    def convert_eval_module(self, module: ModuleT) -> ModuleT:
        """The model to validate/test/predict (the `*-true` precisions cast its parameters)."""
        return module

    def input_converter(self) -> Callable[[Any], Any] | None:
        """batch -> batch cast to this precision, or None when batches stay as they are."""
        return None

    def forward_context(self) -> contextlib.AbstractContextManager:
        return _NO_OP  # shared: entered every step

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        loss.backward(*args, **kwargs)

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring gradients back to their true scale (needed before clipping)."""

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Step the optimizer; return False when the step was skipped (inf/NaN grads)."""
        optimizer.step()
        return True

    def closure_step(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any],
        before_step: Callable[[], None], **kwargs: Any,
    ) -> Any:  # fmt: skip
        """`optimizer.step(closure)` as Lightning runs a `LightningOptimizer`'s step: the
        closure (usually a backward), then `before_step` (the hooks), inside the step."""

        def closure_then_hooks() -> Any:
            result = closure()
            before_step()
            return result

        return optimizer.step(closure=closure_then_hooks, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise KeyError(f"precision {self.name} has no state; got keys {sorted(state)}")


class MixedPrecision(Precision):
    """`torch.autocast` to bf16 or fp16; fp16 adds a `GradScaler` that skips inf/NaN steps."""

    def __init__(self, name: str, device: torch.device) -> None:
        self.name = name
        self.device_type = device.type
        self.dtype = torch.bfloat16 if name == "bf16-mixed" else torch.float16
        self.scaler = torch.amp.GradScaler(self.device_type) if name == "16-mixed" else None
        self._unscaled: set[int] = set()

    def forward_context(self) -> contextlib.AbstractContextManager:
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward(*args, **kwargs)

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler and id(optimizer) not in self._unscaled:
            self.scaler.unscale_(optimizer)
            self._unscaled.add(id(optimizer))

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> bool:
        if self.scaler is None:
            optimizer.step()
            return True
        scale_before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        self._unscaled.discard(id(optimizer))
        # The scaler lowers its scale exactly when it found inf/NaN and skipped the step.
        return self.scaler.get_scale() >= scale_before

    def closure_step(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any],
        before_step: Callable[[], None], **kwargs: Any,
    ) -> Any:  # fmt: skip
        if self.scaler is None:
            return super().closure_step(optimizer, closure, before_step, **kwargs)
        if isinstance(optimizer, torch.optim.LBFGS):
            raise UserError("precision 16-mixed (a GradScaler) cannot step LBFGS; use bf16-mixed")
        result = closure()
        self.unscale(optimizer)  # hooks and clipping see true gradients
        before_step()
        self.scaler.step(optimizer, **kwargs)  # skipped when the gradients hold inf/NaN
        self.scaler.update()
        self._unscaled.discard(id(optimizer))
        return result

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict()} if self.scaler else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)  # the checkpoint's dict stays whole
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state.pop("scaler"))
        if state:
            raise KeyError(f"precision {self.name} cannot use checkpoint keys {sorted(state)}")


class TruePrecision(Precision):
    """Lightning's `bf16-true`, `16-true` and `64-true`: the parameters themselves in that
    dtype, floating-point inputs cast to it, and it is the default dtype inside the forward
    (tensors the model creates there match). No autocast, no loss scaling."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _TRUE_DTYPES[name]

    def convert_module(self, module: ModuleT) -> ModuleT:
        return module.to(dtype=self.dtype)

    def convert_eval_module(self, module: ModuleT) -> ModuleT:
        return module.to(dtype=self.dtype)

    def input_converter(self) -> Callable[[Any], Any]:
        return functools.partial(cast_floats, dtype=self.dtype)

    @contextlib.contextmanager
    def forward_context(self) -> Iterator[None]:
        default = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        try:
            yield
        finally:
            torch.set_default_dtype(default)


_TRUE_DTYPES = {"bf16-true": torch.bfloat16, "16-true": torch.float16, "64-true": torch.float64}


def cast_floats(batch: Any, dtype: torch.dtype) -> Any:
    """Every floating-point tensor of a (nested) batch cast to `dtype`; others unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(dtype) if torch.is_floating_point(batch) else batch
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(cast_floats(b, dtype) for b in batch)
    if isinstance(batch, dict):
        return {k: cast_floats(v, dtype) for k, v in batch.items()}
    return batch


class Float8Precision(MixedPrecision):
    """fp8 matmuls through torchao's float8 training, with bf16 autocast around them."""

    def __init__(self, device: torch.device) -> None:
        check_fp8_supported(device)
        super().__init__("bf16-mixed", device)
        self.name = "fp8"

    def convert_module(self, module: ModuleT) -> ModuleT:
        from torchao.float8 import convert_to_float8_training

        # fp8 kernels need both matmul dims divisible by 16; leave other layers in bf16.
        def eligible(mod: torch.nn.Module, _fqn: str) -> bool:
            return isinstance(mod, torch.nn.Linear) and all(
                d % 16 == 0 for d in (mod.in_features, mod.out_features)
            )

        converted = convert_to_float8_training(module, module_filter_fn=eligible)
        return cast(ModuleT, converted)  # the same module, its Linear layers swapped


def check_fp8_supported(device: torch.device) -> None:
    """Raise a `UserError` unless this device can train in fp8 (CUDA >= 8.9 and torchao)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        raise UserError(
            "precision fp8 needs an NVIDIA GPU with compute capability >= 8.9 (Ada or Hopper, "
            f"e.g. H100); this run is on {device.type}. Use --precision bf16-mixed instead."
        )
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        name = torch.cuda.get_device_name(device)
        raise UserError(
            f"precision fp8 needs compute capability >= 8.9; {name} has {major}.{minor}. "
            "Use --precision bf16-mixed instead."
        )
    try:
        import torchao.float8  # noqa: F401
    except ImportError as exc:
        raise UserError(
            "precision fp8 uses torchao's float8 training: `pip install torchao`"
        ) from exc


def build_precision(value: str | int | None, device: torch.device) -> Precision:
    """Create the precision policy for `value` (any accepted spelling) on `device`."""
    name = normalize_precision(value)
    if name == "32-true":
        return Precision()
    if name == "fp8":
        return Float8Precision(device)
    if name in _TRUE_DTYPES:
        return TruePrecision(name)
    return MixedPrecision(name, device)
