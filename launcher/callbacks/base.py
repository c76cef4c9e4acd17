"""The `Callback` base class, and `HOOKS`: the hook names, read from its methods.

Callbacks are duck-typed: the trainer calls every hook a callback defines, so a plain object
with an `on_train_epoch_end(trainer, module)` method works too. Subclassing `Callback`
documents the hooks and gives default `state_dict`/`load_state_dict`. A hook the trainer
should call is a method here: `HOOKS` lists them, and the trainer dispatches exactly those.

    class PrintEpoch(Callback):
        def on_train_epoch_end(self, trainer, module):
            if trainer.is_global_zero:
                print(trainer.current_epoch, trainer.callback_metrics)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from launcher.train.module import Module
    from launcher.train.trainer import Trainer


class Callback:
    """Hooks the trainer calls during `fit`, `validate` and `test`.

    State that must survive a resume goes in `state_dict()`; the trainer stores it under
    `state_key` in the checkpoint and hands it back through `load_state_dict()`.
    """

    @property
    def state_key(self) -> str:
        """Key of this callback's state in a checkpoint; unique per callback instance kind."""
        return type(self).__qualname__

    def setup(self, trainer: Trainer, module: Module, stage: str) -> None: ...
    def teardown(self, trainer: Trainer, module: Module, stage: str) -> None: ...
    def on_fit_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_fit_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_train_epoch_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_train_epoch_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_train_batch_start(
        self, trainer: Trainer, module: Module, batch: Any, batch_idx: int
    ) -> None: ...
    def on_train_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_validation_epoch_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_validation_epoch_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_validation_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_test_epoch_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_test_epoch_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_test_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_before_optimizer_step(
        self, trainer: Trainer, module: Module, optimizer: torch.optim.Optimizer
    ) -> None: ...
    def on_save_checkpoint(
        self, trainer: Trainer, module: Module, checkpoint: dict[str, Any]
    ) -> None: ...
    def on_load_checkpoint(
        self, trainer: Trainer, module: Module, checkpoint: dict[str, Any]
    ) -> None: ...
    def on_exception(self, trainer: Trainer, module: Module, exception: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            raise KeyError(f"{type(self).__name__} has no state to load: {sorted(state_dict)}")


# Every method of the base except the state ones is a hook, in the order defined above.
HOOKS: tuple[str, ...] = tuple(
    name
    for name, value in vars(Callback).items()
    if callable(value)
    and not name.startswith("_")
    and name not in ("state_dict", "load_state_dict")
)
