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
        """Key of this callback's state in a checkpoint; unique per callback instance kind.

        A callback used twice with different settings returns
        `self._generate_state_key(setting=...)`, as Lightning's do.
        """
        return type(self).__qualname__

    def _generate_state_key(self, **kwargs: Any) -> str:
        """Lightning's: the class's qualified name, then the repr of `kwargs`.

        Callback()._generate_state_key(monitor="val_loss")  # "Callback{'monitor': 'val_loss'}"
        """
        return f"{type(self).__qualname__}{kwargs!r}"

    def setup(self, trainer: Trainer, module: Module, stage: str) -> None: ...
    def teardown(self, trainer: Trainer, module: Module, stage: str) -> None: ...
    def on_fit_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_fit_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_sanity_check_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_sanity_check_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_train_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_train_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_train_epoch_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_train_epoch_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_train_batch_start(
        self, trainer: Trainer, module: Module, batch: Any, batch_idx: int
    ) -> None: ...
    def on_train_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_validation_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_validation_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_validation_epoch_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_validation_epoch_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_validation_batch_start(
        self, trainer: Trainer, module: Module, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...  # fmt: skip
    def on_validation_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...  # fmt: skip
    def on_test_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_test_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_test_epoch_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_test_epoch_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_test_batch_start(
        self, trainer: Trainer, module: Module, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...  # fmt: skip
    def on_test_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...  # fmt: skip
    def on_predict_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_predict_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_predict_epoch_start(self, trainer: Trainer, module: Module) -> None: ...
    def on_predict_epoch_end(self, trainer: Trainer, module: Module) -> None: ...
    def on_predict_batch_start(
        self, trainer: Trainer, module: Module, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...  # fmt: skip
    def on_predict_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...  # fmt: skip
    def on_before_zero_grad(
        self, trainer: Trainer, module: Module, optimizer: torch.optim.Optimizer
    ) -> None: ...
    def on_before_backward(self, trainer: Trainer, module: Module, loss: torch.Tensor) -> None: ...
    def on_after_backward(self, trainer: Trainer, module: Module) -> None: ...
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

# Hooks of Lightning 1.x that 2.0 removed, and what replaces each: a callback or model that
# still defines one gets a warning instead of a hook that silently never runs.
REMOVED_HOOKS: dict[str, str] = {
    "on_epoch_start": "on_train_epoch_start (or on_validation_epoch_start / on_test_epoch_start)",
    "on_epoch_end": "on_train_epoch_end (or on_validation_epoch_end / on_test_epoch_end)",
    "on_batch_start": "on_train_batch_start",
    "on_batch_end": "on_train_batch_end",
    "on_init_start": "nothing: put the code in the callback's __init__",
    "on_init_end": "nothing: put the code in the callback's __init__",
    "on_pretrain_routine_start": "on_fit_start",
    "on_pretrain_routine_end": "on_fit_start",
    "on_keyboard_interrupt": "on_exception",
    "on_configure_sharded_model": "setup",
    "on_before_accelerator_backend_setup": "setup",
    "on_post_move_to_device": "nothing: tie weights in configure_model or setup",
    "on_hpc_save": "on_save_checkpoint",
    "on_hpc_load": "on_load_checkpoint",
    "training_epoch_end": "on_train_epoch_end (collect the step outputs yourself)",
    "validation_epoch_end": "on_validation_epoch_end (collect the step outputs yourself)",
    "test_epoch_end": "on_test_epoch_end (collect the step outputs yourself)",
    "training_step_end": "training_step (do the reduction there)",
    "validation_step_end": "validation_step (do the reduction there)",
    "test_step_end": "test_step (do the reduction there)",
}
