"""The `Callback` base class.

Callbacks are duck-typed: the trainer calls every hook a callback defines, so a plain object
with an `on_train_epoch_end(trainer, module)` method works too. Subclassing `Callback` only
documents the hooks and gives default `state_dict`/`load_state_dict`.

    class PrintEpoch(Callback):
        def on_train_epoch_end(self, trainer, module):
            if trainer.is_global_zero:
                print(trainer.current_epoch, trainer.callback_metrics)
"""

from __future__ import annotations

from typing import Any


class Callback:
    """Hooks the trainer calls during `fit`, `validate` and `test`.

    State that must survive a resume goes in `state_dict()`; the trainer stores it under
    `state_key` in the checkpoint and hands it back through `load_state_dict()`.
    """

    @property
    def state_key(self) -> str:
        """Key of this callback's state in a checkpoint; unique per callback instance kind."""
        return type(self).__qualname__

    def setup(self, trainer: Any, module: Any, stage: str) -> None: ...
    def teardown(self, trainer: Any, module: Any, stage: str) -> None: ...
    def on_fit_start(self, trainer: Any, module: Any) -> None: ...
    def on_fit_end(self, trainer: Any, module: Any) -> None: ...
    def on_train_epoch_start(self, trainer: Any, module: Any) -> None: ...
    def on_train_epoch_end(self, trainer: Any, module: Any) -> None: ...
    def on_train_batch_start(
        self, trainer: Any, module: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_train_batch_end(
        self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_validation_epoch_start(self, trainer: Any, module: Any) -> None: ...
    def on_validation_epoch_end(self, trainer: Any, module: Any) -> None: ...
    def on_validation_batch_end(
        self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_test_epoch_start(self, trainer: Any, module: Any) -> None: ...
    def on_test_epoch_end(self, trainer: Any, module: Any) -> None: ...
    def on_before_optimizer_step(self, trainer: Any, module: Any, optimizer: Any) -> None: ...
    def on_save_checkpoint(self, trainer: Any, module: Any, checkpoint: dict) -> None: ...
    def on_load_checkpoint(self, trainer: Any, module: Any, checkpoint: dict) -> None: ...
    def on_exception(self, trainer: Any, module: Any, exception: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            raise KeyError(f"{type(self).__name__} has no state to load: {sorted(state_dict)}")
