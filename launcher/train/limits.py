"""How long `fit` trains: Lightning's `max_epochs`/`max_steps`/`min_epochs`/`min_steps`.

    limits = FitLimits.parse(max_epochs=None, max_steps=-1, min_epochs=None, min_steps=None,
                             has_timer=False)      # max_epochs 1000, as Lightning defaults
    limits.max_reached(loop)                       # max_steps or max_epochs met
    limits.can_stop_early(loop)                    # min_epochs and min_steps met

`max_epochs=-1` (or None with `max_steps` or `max_time` set) means no epoch limit, `0` trains
no epoch; `trainer.should_stop` (EarlyStopping, Timer, a callback) ends the run only once
`min_epochs` and `min_steps` are met, as in Lightning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.loop import LoopState


def _check_count(name: str, value: int | None, lowest: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise UserError(f"{name} must be an int, got {value!r}")
    if value is not None and value < lowest:
        allowed = "-1 (no limit) or >= 0" if lowest == -1 else f">= {lowest}"
        raise UserError(f"{name} must be {allowed}, got {value}")


@dataclass(frozen=True)
class FitLimits:
    """The resolved limits: `max_epochs` -1 and `max_steps` -1 mean none."""

    max_epochs: int = 1000
    max_steps: int = -1
    min_epochs: int = 0
    min_steps: int = 0
    max_epochs_defaulted: bool = False  # none of max_epochs, max_steps, max_time was set

    @classmethod
    def parse(cls, max_epochs: int | None, max_steps: int | None, min_epochs: int | None,
              min_steps: int | None, has_timer: bool) -> FitLimits:  # fmt: skip
        """Lightning's defaults (`_parse_loop_limits`) and its checks, as `UserError`s."""
        max_steps = -1 if max_steps is None else max_steps
        _check_count("max_epochs", max_epochs, -1)
        _check_count("max_steps", max_steps, -1)
        _check_count("min_epochs", min_epochs, 0)
        _check_count("min_steps", min_steps, 0)
        defaulted = max_epochs is None and max_steps == -1 and not has_timer
        if max_epochs is None:
            max_epochs = 1000 if defaulted else -1
        if min_epochs is None:
            # As Lightning: min_steps alone implies one epoch, so a stop on_fit_start waits.
            min_epochs = 1 if min_steps else 0
        return cls(max_epochs, max_steps, min_epochs, min_steps or 0, defaulted)

    def warn_if_defaulted(self) -> None:
        """Lightning's warning when `fit` starts without any limit set."""
        if self.max_epochs_defaulted:
            warnings.warn(
                "max_epochs was not set. Setting it to 1000 epochs. To train without an epoch "
                "limit, set max_epochs=-1.",
                UserWarning,
                stacklevel=3,
            )

    def max_reached(self, loop: LoopState) -> bool:
        """max_steps or max_epochs met (an epoch counts once it is done)."""
        if self.max_steps != -1 and loop.global_step >= self.max_steps:
            return True
        return self.max_epochs != -1 and loop.epoch >= self.max_epochs

    def can_stop_early(self, loop: LoopState) -> bool:
        """min_epochs and min_steps met: `should_stop` may end the run."""
        done_epochs = loop.epoch + int(loop.epoch_done)
        return done_epochs >= self.min_epochs and loop.global_step >= self.min_steps
