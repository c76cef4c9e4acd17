"""`Timer`: stop training after a time budget, and measure each stage (Lightning's).

    timer = Timer(duration="00:12:00:00")             # DD:HH:MM:SS, a timedelta or a dict
    Trainer(callbacks=[timer])
    timer.time_elapsed("train"), timer.time_remaining()

Checked after every batch (`interval="step"`) or epoch (`"epoch"`); every rank agrees with
rank 0. The training time used so far is in the checkpoint: a resumed run keeps counting.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from launcher.callbacks.base import Callback
from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer

# Lightning's RunningStage values.
STAGES = ("train", "sanity_check", "validate", "test", "predict")


class Timer(Callback):
    """Stops `fit` once `duration` of training time has passed (`None`: only measures)."""

    def __init__(
        self,
        duration: str | timedelta | dict[str, int] | None = None,
        interval: str = "step",
        verbose: bool = True,
    ) -> None:
        if isinstance(duration, str):
            match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", duration.strip())
            if not match:
                raise UserError(
                    f"`Timer(duration={duration!r})` is not a valid duration. "
                    "Expected a string in the format DD:HH:MM:SS."
                )
            d, h, m, s = (int(g) for g in match.groups())
            duration = timedelta(days=d, hours=h, minutes=m, seconds=s)
        elif isinstance(duration, dict):
            duration = timedelta(**duration)
        if interval not in ("step", "epoch"):
            raise UserError(
                f"Unsupported parameter value `Timer(interval={interval})`. "
                "Possible choices are: step, epoch"
            )
        self._duration = duration.total_seconds() if duration is not None else None
        self._interval = interval
        self._verbose = verbose
        self._start_time: dict[str, float | None] = dict.fromkeys(STAGES)
        self._end_time: dict[str, float | None] = dict.fromkeys(STAGES)
        self._offset = 0.0

    def start_time(self, stage: str = "train") -> float | None:
        """When `stage` started (`time.monotonic()` seconds), or None."""
        return self._start_time[_stage(stage)]

    def end_time(self, stage: str = "train") -> float | None:
        return self._end_time[_stage(stage)]

    def time_elapsed(self, stage: str = "train") -> float:
        """Seconds spent in `stage` ("train" includes the time before a resume)."""
        start, end = self.start_time(stage), self.end_time(stage)
        offset = self._offset if stage == "train" else 0.0
        if start is None:
            return offset
        return (time.monotonic() if end is None else end) - start + offset

    def time_remaining(self, stage: str = "train") -> float | None:
        if self._duration is None:
            return None
        return self._duration - self.time_elapsed(stage)

    def on_train_start(self, trainer: Trainer, module: Module) -> None:
        self._start_time["train"] = time.monotonic()

    def on_train_end(self, trainer: Trainer, module: Module) -> None:
        self._end_time["train"] = time.monotonic()

    def on_validation_start(self, trainer: Trainer, module: Module) -> None:
        self._start_time["validate"] = time.monotonic()

    def on_validation_end(self, trainer: Trainer, module: Module) -> None:
        self._end_time["validate"] = time.monotonic()

    def on_test_start(self, trainer: Trainer, module: Module) -> None:
        self._start_time["test"] = time.monotonic()

    def on_test_end(self, trainer: Trainer, module: Module) -> None:
        self._end_time["test"] = time.monotonic()

    def on_fit_start(self, trainer: Trainer, module: Module) -> None:
        # After a resume: a budget already spent stops the run before it trains.
        if self._duration is not None:
            self._check_time_remaining(trainer)

    def on_train_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._interval == "step" and self._duration is not None:
            self._check_time_remaining(trainer)

    def on_train_epoch_end(self, trainer: Trainer, module: Module) -> None:
        if self._interval == "epoch" and self._duration is not None:
            self._check_time_remaining(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"time_elapsed": {stage: self.time_elapsed(stage) for stage in STAGES}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._offset = state_dict.get("time_elapsed", {}).get("train", 0.0)

    def _check_time_remaining(self, trainer: Trainer) -> None:
        assert self._duration is not None
        should_stop = bool(trainer.broadcast(self.time_elapsed() >= self._duration))
        trainer.should_stop = trainer.should_stop or should_stop
        if should_stop and self._verbose and trainer.is_global_zero:
            elapsed = timedelta(seconds=int(self.time_elapsed("train")))
            print(f"Time limit reached. Elapsed time is {elapsed}. Signaling Trainer to stop.")


def _stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"{stage!r} is not a valid stage; use one of {', '.join(STAGES)}")
    return stage
