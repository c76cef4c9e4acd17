"""When the fit loop validates: Lightning's `val_check_interval` and `check_val_every_n_epoch`.

    schedule = ValSchedule(val_check_interval=0.25, check_val_every_n_epoch=1)
    schedule.setup(num_training_batches=20, validates=True)   # check_batch == 5
    schedule.due(loop, last_batch=False)                      # after batches 5, 10, 15, 20

A float is a fraction of the (limited) training epoch, an int a number of training batches;
with `check_val_every_n_epoch=None` the int counts batches across epochs (iteration-based
training), otherwise it counts within the epoch and may not exceed the epoch's length. The
decision is a pure function of the loop position (`LoopState.batch_idx`,
`LoopState.total_batch_idx`), so a resumed run validates at exactly the batches an
uninterrupted one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.loop import LoopState


def check_interval_setting(
    val_check_interval: int | float | None, check_val_every_n_epoch: int | None
) -> int | float:
    """The validated `val_check_interval` (None means 1.0, once per epoch)."""
    if val_check_interval is None:
        val_check_interval = 1.0
    if isinstance(val_check_interval, bool) or not isinstance(val_check_interval, (int, float)):
        raise UserError(
            f"val_check_interval={val_check_interval!r} is not supported here: pass a float in "
            "(0, 1] (a fraction of the training epoch) or an int (a number of training batches). "
            "Time-based intervals (str/timedelta/dict) are not supported; use max_time to bound "
            "the run by time."
        )
    if check_val_every_n_epoch is not None and (
        isinstance(check_val_every_n_epoch, bool)
        or not isinstance(check_val_every_n_epoch, int)
        or check_val_every_n_epoch < 1
    ):
        raise UserError(
            f"check_val_every_n_epoch must be an int >= 1 or None, got {check_val_every_n_epoch!r}"
        )
    if check_val_every_n_epoch is None and isinstance(val_check_interval, float):
        raise UserError(
            "val_check_interval must be an int (a number of training batches) when "
            f"check_val_every_n_epoch=None, got {val_check_interval}; pass e.g. "
            "val_check_interval=100 to validate every 100 batches across epochs"
        )
    if isinstance(val_check_interval, float) and not 0.0 < val_check_interval <= 1.0:
        raise UserError(
            f"val_check_interval={val_check_interval} must be a fraction in (0, 1] or an int "
            "number of training batches"
        )
    if isinstance(val_check_interval, int) and val_check_interval < 1:
        raise UserError(f"val_check_interval={val_check_interval} must be >= 1 batches")
    return val_check_interval


@dataclass
class ValSchedule:
    """Decides after which training batches the fit loop runs validation."""

    val_check_interval: int | float = 1.0
    check_val_every_n_epoch: int | None = 1
    check_batch: int | float = math.inf  # validate after every `check_batch` batches

    def setup(self, num_training_batches: int | float, validates: bool) -> None:
        """Compute `check_batch` for this epoch length (Lightning's `val_check_batch`)."""
        interval = self.val_check_interval
        if isinstance(interval, int):
            per_epoch = self.check_val_every_n_epoch is not None
            if per_epoch and validates and interval > num_training_batches:
                raise UserError(
                    f"val_check_interval ({interval}) must be less than or equal to the number "
                    f"of training batches ({num_training_batches}). To disable validation set "
                    "limit_val_batches=0; to validate every N batches across epochs set "
                    "check_val_every_n_epoch=None."
                )
            self.check_batch = interval
        elif math.isinf(num_training_batches):
            if interval != 1.0:
                raise UserError(
                    "with an IterableDataset of unknown length, val_check_interval must be 1.0 "
                    f"or an int number of batches, got {interval}"
                )
            self.check_batch = math.inf
        else:
            self.check_batch = max(1, int(num_training_batches * interval))

    def epoch_validates(self, epoch: int) -> bool:
        """Whether epoch `epoch` (0-based) validates at all."""
        every = self.check_val_every_n_epoch
        return every is None or (epoch + 1) % every == 0

    def due(self, loop: LoopState, last_batch: bool) -> bool:
        """After the batch just done (`loop.batch_idx` counts it; `last_batch`: the epoch's
        last): is validation due?"""
        if not self.epoch_validates(loop.epoch):
            return False
        if math.isinf(self.check_batch):  # once, after the epoch's last batch
            return last_batch
        if self.check_val_every_n_epoch is None:
            return loop.total_batch_idx % self.check_batch == 0
        return loop.batch_idx % self.check_batch == 0

    @property
    def once_per_epoch(self) -> bool:
        """Validation only at epoch ends, every epoch (where callbacks check on train epoch end)."""
        return self.val_check_interval == 1.0 and self.check_val_every_n_epoch == 1
