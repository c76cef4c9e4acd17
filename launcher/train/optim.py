"""Turn whatever `configure_optimizers()` returns into optimizers and scheduler configs.

Accepted, as in Lightning: an optimizer; a list of optimizers; `(optimizers, schedulers)`;
`{"optimizer": opt, "lr_scheduler": sched | {"scheduler": sched, "interval": "epoch"|"step",
"frequency": 1, "monitor": "val_loss"}}`; or a list of such dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from launcher.errors import UserError


@dataclass
class SchedulerConfig:
    scheduler: Any
    interval: str = "epoch"
    frequency: int = 1
    monitor: str | None = None
    strict: bool = True


def parse_optimizers(value: Any) -> tuple[list[torch.optim.Optimizer], list[SchedulerConfig]]:
    """Normalise `configure_optimizers()`'s return value."""
    if isinstance(value, torch.optim.Optimizer):
        return [value], []
    if isinstance(value, dict):
        return _from_dicts([value])
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, dict) for v in value):
            return _from_dicts(list(value))
        if (
            len(value) == 2
            and isinstance(value[0], (list, tuple))
            and isinstance(value[1], (list, tuple))
        ):
            return list(value[0]), [_scheduler_config(s) for s in value[1]]
        if all(isinstance(v, torch.optim.Optimizer) for v in value):
            return list(value), []
    raise UserError(
        f"configure_optimizers() returned {type(value).__name__}; return an optimizer, "
        "(optimizers, schedulers), or {'optimizer': ..., 'lr_scheduler': ...}"
    )


def _from_dicts(items: list[dict]) -> tuple[list[torch.optim.Optimizer], list[SchedulerConfig]]:
    optimizers, schedulers = [], []
    for item in items:
        unknown = set(item) - {"optimizer", "lr_scheduler", "monitor"}
        if unknown or "optimizer" not in item:
            raise UserError(
                f"configure_optimizers() dict has keys {sorted(item)}; "
                "valid keys: optimizer (required), lr_scheduler, monitor"
            )
        optimizers.append(item["optimizer"])
        if item.get("lr_scheduler") is not None:
            config = _scheduler_config(item["lr_scheduler"])
            config.monitor = config.monitor or item.get("monitor")
            schedulers.append(config)
    return optimizers, schedulers


def _scheduler_config(value: Any) -> SchedulerConfig:
    if isinstance(value, dict):
        valid = {"scheduler", "interval", "frequency", "monitor", "strict", "name"}
        unknown = set(value) - valid
        if unknown or "scheduler" not in value:
            raise UserError(
                f"lr_scheduler dict has keys {sorted(value)}; valid keys: {sorted(valid)} "
                "('scheduler' is required)"
            )
        value = {k: v for k, v in value.items() if k != "name"}
        config = SchedulerConfig(**value)
    else:
        config = SchedulerConfig(scheduler=value)
    if config.interval not in ("epoch", "step"):
        raise UserError(f"lr_scheduler interval must be 'epoch' or 'step', not {config.interval!r}")
    return config
