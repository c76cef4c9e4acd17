"""`LearningRateMonitor`: log each optimizer's learning rate, Lightning-style names.

    from launcher.callbacks import LearningRateMonitor

    LearningRateMonitor()                         # steps for step schedulers, epochs otherwise
    LearningRateMonitor(logging_interval="step")  # every `log_every_n_steps` optimizer steps

Names: `lr-Adam`; several param groups -> `lr-Adam/pg1`, `lr-Adam/pg2` (or the group's
`"name"`); a second optimizer of the same class -> `lr-Adam-1`. Sent with
`trainer.log_metrics(...)`, which only logs on global rank 0.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from launcher.callbacks.base import Callback
from launcher.errors import UserError

if TYPE_CHECKING:
    import torch

    from launcher.train.module import Module
    from launcher.train.trainer import Trainer

_INTERVALS = (None, "step", "epoch")


class LearningRateMonitor(Callback):
    """Log learning rates (and optionally momentum / weight decay) of all optimizers.

    `logging_interval=None` logs step-interval schedulers every `trainer.log_every_n_steps`
    steps, epoch-interval schedulers at each epoch start, and optimizers without a scheduler
    at both. "step" or "epoch" logs everything at that interval.
    """

    def __init__(
        self,
        logging_interval: str | None = None,
        log_momentum: bool = False,
        log_weight_decay: bool = False,
    ) -> None:
        if logging_interval not in _INTERVALS:
            raise UserError(
                f"LearningRateMonitor(logging_interval={logging_interval!r}) is not valid; "
                "use one of: None, 'step', 'epoch'."
            )
        self.logging_interval = logging_interval
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay
        self._disabled = False
        self._last_logged_step = -1

    def on_fit_start(self, trainer: Trainer, module: Module) -> None:
        self._disabled = not trainer.is_global_zero or not trainer.loggers
        if trainer.is_global_zero and not trainer.loggers:
            print(
                "LearningRateMonitor: the trainer has no logger, so nothing will be logged; "
                "enable a logger or drop the callback.",
                file=sys.stderr,
            )

    def on_train_batch_start(
        self, trainer: Trainer, module: Module, batch: Any, batch_idx: int
    ) -> None:
        if self._disabled or self.logging_interval == "epoch":
            return
        every = trainer.log_every_n_steps
        # With gradient accumulation several batches share one global step: log it once.
        if trainer.global_step % every != 0 or trainer.global_step == self._last_logged_step:
            return
        self._last_logged_step = trainer.global_step
        stats = self.extract_stats(trainer, "step" if self.logging_interval is None else "any")
        if stats:
            trainer.log_metrics(stats, step=trainer.global_step)

    def on_train_epoch_start(self, trainer: Trainer, module: Module) -> None:
        if self._disabled or self.logging_interval == "step":
            return
        stats = self.extract_stats(trainer, "epoch" if self.logging_interval is None else "any")
        if stats:
            trainer.log_metrics(stats, step=trainer.global_step)

    def extract_stats(self, trainer: Trainer, interval: str) -> dict[str, float]:
        """Current values for the optimizers due at `interval` ("step", "epoch" or "any")."""
        stats: dict[str, float] = {}
        scheduled = {id(c.scheduler.optimizer): c for c in trainer.lr_scheduler_configs}
        for optimizer, names in zip(
            trainer.optimizers, optimizer_names(trainer.optimizers), strict=True
        ):
            config = scheduled.get(id(optimizer))
            # An optimizer without scheduler is reported at every interval.
            if config is not None and interval not in (config.interval, "any"):
                continue
            for group, name in zip(optimizer.param_groups, names, strict=True):
                stats[name] = float(group["lr"])
                if self.log_momentum:
                    momentum = group.get("momentum", group.get("betas", (None,))[0])
                    if momentum is not None:
                        stats[f"{name}-momentum"] = float(momentum)
                if self.log_weight_decay and "weight_decay" in group:
                    stats[f"{name}-weight_decay"] = float(group["weight_decay"])
        return stats


def optimizer_names(optimizers: list[torch.optim.Optimizer]) -> list[list[str]]:
    """Lightning's metric names, one list per optimizer with one name per param group.

    optimizer_names([Adam(2 groups), Adam, SGD])
    -> [["lr-Adam/pg1", "lr-Adam/pg2"], ["lr-Adam-1"], ["lr-SGD"]]
    """
    seen: dict[type, int] = defaultdict(int)
    result = []
    for optimizer in optimizers:
        cls = type(optimizer)
        seen[cls] += 1
        base = f"lr-{cls.__name__}"
        if seen[cls] > 1:
            base += f"-{seen[cls] - 1}"
        groups = optimizer.param_groups
        names = []
        for index, group in enumerate(groups):
            label = group.get("name") or (f"pg{index + 1}" if len(groups) > 1 else None)
            names.append(f"{base}/{label}" if label else base)
        result.append(names)
    return result
