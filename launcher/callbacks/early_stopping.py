"""`EarlyStopping`: stop training when a monitored metric stops improving, Lightning-style.

    from launcher.callbacks import EarlyStopping

    EarlyStopping(monitor="val_loss", mode="min", patience=3)
    EarlyStopping(monitor="val_acc", mode="max", min_delta=0.001, stopping_threshold=0.99)

Checked at the end of each training epoch (after validation), or after each validation when
validation runs other than once per epoch (`val_check_interval`, `check_val_every_n_epoch`), as
Lightning's `check_on_train_epoch_end=None` does. Rank 0 decides and broadcasts, so every rank
stops at the same step.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from launcher.callbacks.base import Callback
from launcher.callbacks.model_checkpoint import (
    _as_number,
    generate_state_key,
    missing_metric_error,
    validation_skipped_this_epoch,
)
from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer


class EarlyStopping(Callback):
    """Set `trainer.should_stop` after `patience` epochs without an improvement > `min_delta`.

    Also stops at once when the metric is NaN/inf (`check_finite`), reaches
    `stopping_threshold`, or goes past `divergence_threshold`. After a stop, `stopped_epoch`
    is the epoch and `stopping_reason` says why.
    """

    def __init__(
        self,
        monitor: str,
        mode: str = "min",
        patience: int = 3,
        min_delta: float = 0.0,
        check_finite: bool = True,
        verbose: bool = False,
        strict: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_on_train_epoch_end: bool | None = None,
    ) -> None:
        if mode not in ("min", "max"):
            raise UserError(f"EarlyStopping(mode={mode!r}) is not valid; use one of: min, max.")
        if patience < 1:
            raise UserError(f"EarlyStopping(patience={patience}) must be >= 1.")
        if min_delta < 0:
            raise UserError(f"EarlyStopping(min_delta={min_delta}) must be >= 0.")
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.check_finite = check_finite
        self.verbose = verbose
        self.strict = strict
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        self.check_on_train_epoch_end = check_on_train_epoch_end
        self.wait_count = 0
        self.stopped_epoch = 0
        self.best_score = math.inf if mode == "min" else -math.inf
        self.stopping_reason: str | None = None
        self._warned_missing = False

    @property
    def state_key(self) -> str:
        return generate_state_key(type(self).__qualname__, monitor=self.monitor, mode=self.mode)

    def on_train_epoch_end(self, trainer: Trainer, module: Module) -> None:
        if self._checks_on_train_epoch_end(trainer):
            self._check(trainer)

    def on_validation_end(self, trainer: Trainer, module: Module) -> None:
        if not trainer.sanity_checking and not self._checks_on_train_epoch_end(trainer):
            self._check(trainer)

    def _checks_on_train_epoch_end(self, trainer: Trainer) -> bool:
        if self.check_on_train_epoch_end is not None:
            return self.check_on_train_epoch_end
        return trainer.val_check_interval == 1.0 and trainer.check_val_every_n_epoch == 1

    def _check(self, trainer: Trainer) -> None:
        if trainer.stage != "fit" or validation_skipped_this_epoch(trainer):
            return
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            # Checked on every rank (names agree across ranks) so no rank waits in broadcast.
            if self.strict:
                raise missing_metric_error("EarlyStopping", self.monitor, metrics)
            if not self._warned_missing and trainer.is_global_zero:
                print(f"EarlyStopping: {self.monitor!r} not logged; not checking.", file=sys.stderr)
            self._warned_missing = True
            return
        decision = self._decide(metrics) if trainer.is_global_zero else None
        decision = trainer.broadcast(decision)
        self.best_score, self.wait_count, should_stop, reason = decision
        if should_stop:
            self.stopped_epoch = trainer.current_epoch
            self.stopping_reason = reason
            trainer.should_stop = True
        if trainer.is_global_zero and reason and (should_stop or self.verbose):
            print(f"EarlyStopping: {reason}", file=sys.stderr)

    def _decide(self, metrics: dict[str, Any]) -> tuple[float, int, bool, str]:
        current = float(_as_number(metrics[self.monitor]))
        should_stop, reason = self._evaluate(current)
        return self.best_score, self.wait_count, should_stop, reason

    def _improves(self, current: float, reference: float) -> bool:
        if self.mode == "min":
            return current < reference
        return current > reference

    def _evaluate(self, current: float) -> tuple[bool, str]:
        """Update best score/wait count for `current`; return (stop?, reason)."""
        name = self.monitor
        if self.check_finite and not math.isfinite(current):
            return True, (
                f"monitored metric {name} = {current} is not finite; previous best "
                f"{self.best_score:.4g}. Stopping."
            )
        threshold = self.stopping_threshold
        if threshold is not None and self._improves(current, threshold):
            return True, (
                f"stopping threshold reached: {name} = {current:.4g} "
                f"{'<' if self.mode == 'min' else '>'} {threshold}. Stopping."
            )
        if self.divergence_threshold is not None and self._improves(
            self.divergence_threshold, current
        ):
            return True, (
                f"divergence threshold: {name} = {current:.4g} "
                f"{'>' if self.mode == 'min' else '<'} {self.divergence_threshold}. Stopping."
            )
        delta = -self.min_delta if self.mode == "min" else self.min_delta
        if self._improves(current - delta, self.best_score):
            previous = self.best_score
            self.best_score = current
            self.wait_count = 0
            if math.isfinite(previous):
                return False, f"{name} improved by {abs(previous - current):.4g}: {current:.4g}"
            return False, f"{name} improved: {current:.4g}"
        self.wait_count += 1
        if self.wait_count >= self.patience:
            return True, (
                f"{name} did not improve in the last {self.wait_count} epochs; "
                f"best {self.best_score:.4g}. Stopping."
            )
        return False, ""

    def state_dict(self) -> dict[str, Any]:
        return {
            "wait_count": self.wait_count,
            "stopped_epoch": self.stopped_epoch,
            "best_score": self.best_score,
            "patience": self.patience,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        self.wait_count = state.pop("wait_count")
        self.stopped_epoch = state.pop("stopped_epoch")
        self.best_score = state.pop("best_score")
        # Stored to describe the state; the constructor's patience wins on resume.
        state.pop("patience", None)
        if state:
            raise KeyError(f"EarlyStopping state has unknown keys: {sorted(state)}")
