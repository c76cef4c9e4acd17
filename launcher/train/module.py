"""`Module`: the Lightning-style model a recipe defines.

class MNISTModel(Module):
    def __init__(self, hidden_dim: int = 64, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()          # self.hparams.lr == 1e-3
        self.net = nn.Linear(784, 10)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
"""

from __future__ import annotations

import inspect
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from launcher.train.trainer import Trainer


class AttributeDict(dict):
    """A dict whose keys are also attributes: `hparams.lr == hparams["lr"]`."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(f"no hyperparameter {key!r}; saved: {sorted(self)}") from exc

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


def capture_init_args(
    obj: Any, init_frame: FrameType, names: tuple[str, ...], ignore: list[str] | str | None
) -> dict[str, Any]:
    """The arguments `type(obj).__init__` received, read from its running frame."""
    params = inspect.signature(type(obj).__init__).parameters
    ignored = {ignore} if isinstance(ignore, str) else set(ignore or ())
    values = init_frame.f_locals
    captured: dict[str, Any] = {}
    for name, param in params.items():
        if name == "self" or param.kind == param.VAR_POSITIONAL:
            continue
        if param.kind == param.VAR_KEYWORD:
            captured.update(values.get(name, {}))
        elif name in values and name not in ignored and (not names or name in names):
            captured[name] = values[name]
    return captured


class Module(nn.Module):
    """Base class of recipe models. Override the hooks you need; the Trainer calls them."""

    _trainer: Trainer | None
    _hparams: AttributeDict

    def __init__(self) -> None:
        super().__init__()
        # Plain attributes (not submodules): the trainer is no part of the model's state.
        object.__setattr__(self, "_trainer", None)
        object.__setattr__(self, "_hparams", AttributeDict())

    # -- hyperparameters -------------------------------------------------------------------
    @property
    def hparams(self) -> AttributeDict:
        return self._hparams

    def save_hyperparameters(self, *names: str, ignore: list[str] | str | None = None) -> None:
        """Capture the calling `__init__`'s arguments into `self.hparams`.

        Call it inside `__init__`; pass names to keep only those, or `ignore=[...]` to skip.
        """
        frame = inspect.currentframe()
        if frame is not None and frame.f_back is not None:
            self._hparams.update(capture_init_args(self, frame.f_back, names, ignore))

    # -- logging ------------------------------------------------------------------------
    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool = True,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        sync_dist: bool = False,
        reduce_fx: str = "mean",
        batch_size: int | None = None,
        **_lightning_only: Any,
    ) -> None:
        """Record a metric; see `launcher.train.results` for the step/epoch defaults."""
        trainer = self._trainer
        if trainer is None or trainer.results is None:
            return
        trainer.results.log(
            name, value, prog_bar, logger, on_step, on_epoch, sync_dist, reduce_fx, batch_size
        )

    def log_dict(self, metrics: dict[str, Any], **kwargs: Any) -> None:
        """`self.log` for every item of `metrics`, with the same options."""
        for name, value in metrics.items():
            self.log(name, value, **kwargs)

    def print(self, *args: Any, **kwargs: Any) -> None:
        """`print` on global rank 0 only."""
        if self.global_rank == 0:
            print(*args, **kwargs)

    # -- what the trainer tells the model ------------------------------------------------
    @property
    def trainer(self) -> Trainer:
        if self._trainer is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a Trainer")
        return self._trainer

    @trainer.setter
    def trainer(self, trainer: Trainer | None) -> None:
        """The Trainer running this model sets itself here (`fit`/`validate`/`test`)."""
        object.__setattr__(self, "_trainer", trainer)  # a plain attribute, not a submodule

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    @property
    def global_rank(self) -> int:
        return self._trainer.global_rank if self._trainer else 0

    @property
    def local_rank(self) -> int:
        return self._trainer.local_rank if self._trainer else 0

    @property
    def current_epoch(self) -> int:
        return self._trainer.current_epoch if self._trainer else 0

    @property
    def global_step(self) -> int:
        return self._trainer.global_step if self._trainer else 0

    # -- hooks the recipe overrides ---------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define training_step")

    def configure_optimizers(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define configure_optimizers")

    def configure_callbacks(self) -> list[Any]:
        """Callbacks this model always wants (checkpointing, early stopping...)."""
        return []

    # -- Lightning's model hooks: no-ops the Trainer skips unless a subclass overrides them --
    def setup(self, stage: str) -> None:
        """Called on every process at the start of `stage` ("fit", "validate", "test")."""

    def teardown(self, stage: str) -> None:
        """Called on every process at the end of `stage`."""

    def on_fit_start(self) -> None: ...
    def on_fit_end(self) -> None: ...
    def on_train_start(self) -> None: ...
    def on_train_end(self) -> None: ...
    def on_validation_start(self) -> None: ...
    def on_validation_end(self) -> None: ...
    def on_test_start(self) -> None: ...
    def on_test_end(self) -> None: ...
    def on_predict_start(self) -> None: ...
    def on_predict_end(self) -> None: ...
    def on_train_epoch_start(self) -> None: ...
    def on_train_epoch_end(self) -> None: ...
    def on_validation_epoch_start(self) -> None: ...
    def on_validation_epoch_end(self) -> None: ...
    def on_test_epoch_start(self) -> None: ...
    def on_test_epoch_end(self) -> None: ...
    def on_predict_epoch_start(self) -> None: ...
    def on_predict_epoch_end(self) -> None: ...
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None: ...
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None: ...
    def on_validation_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_validation_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_test_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_predict_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_predict_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_before_zero_grad(self, optimizer: torch.optim.Optimizer) -> None: ...
    def on_before_backward(self, loss: torch.Tensor) -> None: ...
    def on_after_backward(self) -> None: ...
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None: ...

    def on_validation_model_zero_grad(self) -> None:
        """Before a validation inside `fit`: release the gradients (Lightning's default)."""
        self.zero_grad()

    def on_validation_model_eval(self) -> None:
        """Put the model in eval mode for validation (the Trainer restores the mode after)."""
        self.eval()

    def on_validation_model_train(self) -> None:
        """Override to choose the mode after validation; by default the previous one returns."""
        self.train()

    def on_test_model_eval(self) -> None:
        """Put the model in eval mode for testing."""
        self.eval()

    def on_test_model_train(self) -> None:
        """Override to choose the mode after testing; by default the previous one returns."""
        self.train()

    def on_predict_model_eval(self) -> None:
        """Put the model in eval mode for prediction."""
        self.eval()

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Change a batch before it moves to the device; returns the batch."""
        return batch

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Move a batch to `device` (tensors in lists, tuples and dicts by default)."""
        from launcher.train.resolve import move_to_device

        return move_to_device(batch, device)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Change a batch once it is on the device; returns the batch."""
        return batch
