"""`Timer`: stop training once a time budget is spent (what `Trainer(max_time=...)` adds).

    from launcher.callbacks import Timer

    Timer(duration="00:12:00:00")              # DD:HH:MM:SS
    Timer(duration=timedelta(hours=12))        # or dict(hours=12); interval="epoch" checks
    timer.time_elapsed("train")                # seconds, counting the time before a resume

Lightning's semantics: the training time is measured from `on_train_start`, checked after
every training batch (`interval="step"`) or epoch, and saved in the checkpoint, so a resumed
run spends only what is left. Every rank stops at the same batch (rank 0's clock decides).
"""

from __future__ import annotations

import re
import sys
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from launcher.callbacks.base import Callback
from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer

_STAGES = ("train", "validate", "test", "predict", "sanity_check")


def parse_duration(duration: str | timedelta | dict[str, int]) -> timedelta:
    """A string DD:HH:MM:SS, a timedelta or timedelta's keyword arguments -> timedelta."""
    if isinstance(duration, timedelta):
        return duration
    if isinstance(duration, dict):
        try:
            return timedelta(**duration)
        except TypeError as exc:
            raise UserError(f"max_time/Timer duration {duration!r}: {exc}") from exc
    if isinstance(duration, str):
        match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", duration.strip())
        if match:
            days, hours, minutes, seconds = (int(g) for g in match.groups())
            return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise UserError(
        f"max_time/Timer duration {duration!r} is not valid: pass a string DD:HH:MM:SS "
        "(\"00:12:00:00\" for 12 hours), a datetime.timedelta, or a dict such as {'hours': 12}"
    )


class Timer(Callback):
    """Set `trainer.should_stop` once `duration` of training time is spent."""

    def __init__(self, duration: str | timedelta | dict[str, int] | None = None,
                 interval: str = "step", verbose: bool = True) -> None:  # fmt: skip
        if interval not in ("step", "epoch"):
            raise UserError(f"Timer(interval={interval!r}) is not valid; use 'step' or 'epoch'")
        self._duration = None if duration is None else parse_duration(duration).total_seconds()
        self._interval = interval
        self._verbose = verbose
        self._start: dict[str, float | None] = dict.fromkeys(_STAGES)
        self._end: dict[str, float | None] = dict.fromkeys(_STAGES)
        self._offset = 0.0  # training seconds spent before this run was resumed

    def start_time(self, stage: str = "train") -> float | None:
        return self._start[stage]

    def end_time(self, stage: str = "train") -> float | None:
        return self._end[stage]

    def time_elapsed(self, stage: str = "train") -> float:
        """Seconds spent in `stage` ("train" includes the time before a resume)."""
        start, end = self._start[stage], self._end[stage]
        offset = self._offset if stage == "train" else 0.0
        if start is None:
            return offset
        return (time.monotonic() if end is None else end) - start + offset

    def time_remaining(self, stage: str = "train") -> float | None:
        return None if self._duration is None else self._duration - self.time_elapsed(stage)

    def on_train_start(self, trainer: Trainer, module: Module) -> None:
        self._start["train"], self._end["train"] = time.monotonic(), None

    def on_train_end(self, trainer: Trainer, module: Module) -> None:
        self._end["train"] = time.monotonic()

    def on_validation_start(self, trainer: Trainer, module: Module) -> None:
        self._start["validate"], self._end["validate"] = time.monotonic(), None

    def on_validation_end(self, trainer: Trainer, module: Module) -> None:
        self._end["validate"] = time.monotonic()

    def on_test_start(self, trainer: Trainer, module: Module) -> None:
        self._start["test"], self._end["test"] = time.monotonic(), None

    def on_test_end(self, trainer: Trainer, module: Module) -> None:
        self._end["test"] = time.monotonic()

    def on_fit_start(self, trainer: Trainer, module: Module) -> None:
        # After a resume the budget may already be spent: check before training at all.
        if self._duration is not None:
            self._check(trainer)

    def on_train_batch_end(self, trainer: Trainer, module: Module, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        if self._interval == "step" and self._duration is not None:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: Trainer, module: Module) -> None:
        if self._interval == "epoch" and self._duration is not None:
            self._check(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"time_elapsed": {stage: self.time_elapsed(stage) for stage in _STAGES}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._offset = float(state_dict.get("time_elapsed", {}).get("train", 0.0))

    def _check(self, trainer: Trainer) -> None:
        assert self._duration is not None
        spent = self.time_elapsed() >= self._duration
        if trainer.world_size > 1:  # one clock decides, so every rank stops at the same batch
            spent = bool(trainer.broadcast(spent))
        trainer.should_stop = trainer.should_stop or spent
        if spent and self._verbose and trainer.is_global_zero:
            elapsed = timedelta(seconds=int(self.time_elapsed()))
            print(f"Time limit reached. Elapsed time is {elapsed}. Signaling Trainer to stop.",
                  file=sys.stderr)  # fmt: skip
