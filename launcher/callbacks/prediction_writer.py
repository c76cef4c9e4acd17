"""`BasePredictionWriter`: write predictions as `Trainer.predict` produces them, Lightning's.

    class Writer(BasePredictionWriter):
        def __init__(self, out):
            super().__init__(write_interval="epoch")
            self.out = out

        def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
            # under DDP every rank writes its own file; batch_indices say which samples
            torch.save(predictions, f"{self.out}/predictions_{trainer.global_rank}.pt")
            torch.save(batch_indices, f"{self.out}/batch_indices_{trainer.global_rank}.pt")

    trainer = Trainer(callbacks=[Writer("preds")])
    trainer.predict(model, dataloaders=loader, return_predictions=False)

`write_interval="batch"` calls `write_on_batch_end(trainer, module, prediction, batch_indices,
batch, batch_idx, dataloader_idx)` after each batch; `"epoch"` calls `write_on_epoch_end` once
with the predictions (a list per dataloader when there are several) and the batch indices
(dataloaders x batches x sample indices); `"batch_and_epoch"` both.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from launcher.callbacks.base import Callback
from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer


class WriteInterval(str, enum.Enum):
    """When a `BasePredictionWriter` writes."""

    BATCH = "batch"
    EPOCH = "epoch"
    BATCH_AND_EPOCH = "batch_and_epoch"

    @property
    def on_batch(self) -> bool:
        return self in (WriteInterval.BATCH, WriteInterval.BATCH_AND_EPOCH)

    @property
    def on_epoch(self) -> bool:
        return self in (WriteInterval.EPOCH, WriteInterval.BATCH_AND_EPOCH)


class BasePredictionWriter(Callback):
    """Base class of callbacks that store predictions; override the `write_on_*` you use."""

    def __init__(
        self, write_interval: Literal["batch", "epoch", "batch_and_epoch"] = "batch"
    ) -> None:
        values = [i.value for i in WriteInterval]
        if write_interval not in values:
            raise UserError(f"`write_interval` should be one of {values}.")
        self.interval = WriteInterval(write_interval)

    def write_on_batch_end(
        self, trainer: Trainer, pl_module: Module, prediction: Any,
        batch_indices: Sequence[int] | None, batch: Any, batch_idx: int, dataloader_idx: int,
    ) -> None:  # fmt: skip
        """Override with the logic to write a single batch."""
        raise NotImplementedError()

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: Module, predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:  # fmt: skip
        """Override with the logic to write all batches."""
        raise NotImplementedError()

    def on_predict_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        if not self.interval.on_batch:
            return
        batch_indices = trainer.predict_loop.current_batch_indices
        self.write_on_batch_end(trainer, module, outputs, batch_indices, batch, batch_idx,
                                dataloader_idx)  # fmt: skip

    def on_predict_epoch_end(self, trainer: Trainer, module: Module) -> None:
        if not self.interval.on_epoch:
            return
        loop = trainer.predict_loop
        self.write_on_epoch_end(trainer, module, loop.predictions, loop.epoch_batch_indices)
