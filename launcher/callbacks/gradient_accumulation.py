"""`GradientAccumulationScheduler`: a different `accumulate_grad_batches` per epoch.

    GradientAccumulationScheduler(scheduling={0: 1, 4: 2, 8: 4})   # 1 until epoch 4, then 2...

As in Lightning, it sets `trainer.accumulate_grad_batches` when each epoch starts; the fit
loop reads it then. Do not also pass `Trainer(accumulate_grad_batches=...)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from launcher.callbacks.base import Callback
from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer


class GradientAccumulationScheduler(Callback):
    """`scheduling`: {first epoch (0-based): batches to accumulate from then on}."""

    def __init__(self, scheduling: dict[int, int]) -> None:
        if not scheduling:
            raise TypeError("Empty dict cannot be interpreted correct")
        if any(not isinstance(k, int) or k < 0 for k in scheduling):
            raise IndexError(
                f"Epoch must be an int greater than or equal to 0, got {list(scheduling)}"
            )
        if any(not isinstance(v, int) or v < 1 for v in scheduling.values()):
            raise IndexError(
                f"Accumulation factor should be an int greater than 0, got {list(scheduling.values())}"
            )
        self.scheduling = dict(scheduling)
        self.scheduling.setdefault(0, 1)
        self.epochs = sorted(self.scheduling)

    def going_to_accumulate_grad_batches(self) -> bool:
        return any(v > 1 for v in self.scheduling.values())

    def get_accumulate_grad_batches(self, epoch: int) -> int:
        """The accumulation factor for `epoch` (0-based)."""
        return next(self.scheduling[e] for e in reversed(self.epochs) if epoch >= e)

    def on_train_start(self, trainer: Trainer, module: Module) -> None:
        if not getattr(module, "automatic_optimization", True):
            raise UserError(
                "GradientAccumulationScheduler accumulates for automatic optimization only; "
                "remove it, or accumulate yourself in a manual training_step."
            )
        if trainer.accumulate_grad_batches_arg != 1:
            raise UserError(
                "You have set `accumulate_grad_batches` and are using the "
                "`GradientAccumulationScheduler` callback. Either remove `accumulate_grad_batches` "
                "from the Trainer or remove the callback."
            )
        # A run resumed mid-epoch starts without on_train_epoch_start: set this epoch's factor.
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(trainer.current_epoch)

    def on_train_epoch_start(self, trainer: Trainer, module: Module) -> None:
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(trainer.current_epoch)
