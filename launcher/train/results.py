"""Bookkeeping behind `Module.log(...)`: per-step values and batch-size-weighted epoch means.

Lightning's defaults: in training a value is logged per step; in validation and test it is
accumulated and logged once per epoch as the mean weighted by batch size. A value may be a
tensor, a number, or a metric object with `update/compute/reset` (torchmetrics), which is
computed and reset at epoch end. With both `on_step` and `on_epoch`, the names get `_step`
and `_epoch` suffixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# Which reductions `sync_dist` may use; the mean is the batch-size-weighted one.
_REDUCE = {"mean", "sum", "max", "min"}


@dataclass
class _Entry:
    on_step: bool
    on_epoch: bool
    prog_bar: bool
    logger: bool
    sync_dist: bool
    reduce_fx: str
    metric: Any = None  # torchmetrics-style object, computed at epoch end
    total: torch.Tensor | None = None  # weighted sum (or running max/min)
    weight: float = 0.0


class Results:
    """Collects what one stage (train/validate/test) logs during an epoch."""

    def __init__(self, stage: str, all_reduce: Any = None) -> None:
        self.stage = stage
        self._all_reduce = all_reduce  # callable(tensor, op) -> tensor, or None (one process)
        self.entries: dict[str, _Entry] = {}
        self.step_values: dict[str, Any] = {}  # logged this step: name -> tensor/float
        self.batch: Any = None  # the batch being processed: weights epoch means by its size
        self._pending: dict[str, Any] = {}
        self._forked: set[str] = set()  # names logged both on_step and on_epoch

    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool = True,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        sync_dist: bool = False,
        reduce_fx: str = "mean",
        batch_size: int | None = None,
    ) -> None:
        entry = self.entries.get(name)
        # A plain tensor under a name logged before (every step's case) skips straight to the
        # bookkeeping below; the rest creates the entry or handles metric objects and numbers.
        if entry is None or type(value) is not torch.Tensor:
            if entry is None:
                entry = self._new_entry(name, prog_bar, logger, on_step, on_epoch, sync_dist,
                                        reduce_fx)  # fmt: skip
            if hasattr(value, "compute") and hasattr(value, "reset"):
                entry.metric = value
                if entry.on_step:
                    cached = getattr(value, "_forward_cache", None)
                    if cached is not None:
                        self.step_values[name] = cached
                return
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(float(value))
        value = value.detach()
        if entry.on_step:
            if entry.sync_dist and self._all_reduce is not None:
                value = self._all_reduce(value.clone().float(), "mean")
            self.step_values[name] = value
        if entry.on_epoch:
            self._accumulate(entry, value, batch_size)

    def _new_entry(self, name: str, prog_bar: bool, logger: bool, on_step: bool | None,
                   on_epoch: bool | None, sync_dist: bool, reduce_fx: str) -> _Entry:  # fmt: skip
        """A new entry for `name` with Lightning's defaults (restoring a resumed accumulator)."""
        training = self.stage == "train"
        entry = _Entry(
            on_step=training if on_step is None else on_step,
            on_epoch=(not training) if on_epoch is None else on_epoch,
            prog_bar=prog_bar,
            logger=logger,
            sync_dist=sync_dist,
            reduce_fx=reduce_fx,
        )
        if reduce_fx not in _REDUCE:
            raise ValueError(f"self.log({name!r}): reduce_fx must be one of {sorted(_REDUCE)}")
        self.entries[name] = entry
        if entry.on_step and entry.on_epoch:
            self._forked.add(name)
        saved = self._pending.pop(name, None)
        if saved is not None:
            entry.total, entry.weight = saved["total"], saved["weight"]
        return entry

    def _accumulate(self, entry: _Entry, value: torch.Tensor, batch_size: int | None) -> None:
        weight = float(batch_size or size_of_batch(self.batch))
        if entry.reduce_fx == "mean":
            term = value.float() * weight
            entry.total = term if entry.total is None else entry.total + term
            entry.weight += weight
        elif entry.reduce_fx == "sum":
            entry.total = value.float() if entry.total is None else entry.total + value
        else:
            pick = torch.maximum if entry.reduce_fx == "max" else torch.minimum
            entry.total = value.float() if entry.total is None else pick(entry.total, value)

    def step_metrics(self) -> dict[str, Any]:
        """Names (with `_step` suffix where needed) -> this step's values; then cleared."""
        out = self.step_values
        if not out:
            return {}
        self.step_values = {}
        if self._forked:
            out = {f"{k}_step" if k in self._forked else k: v for k, v in out.items()}
        return out

    def epoch_metrics(self) -> dict[str, torch.Tensor]:
        """Epoch values of everything logged with `on_epoch`, then reset for the next epoch."""
        self.batch = None  # don't hold the epoch's last batch (GPU memory) any longer
        out: dict[str, torch.Tensor] = {}
        for name, entry in self.entries.items():
            if not entry.on_epoch:
                continue
            key = f"{name}_epoch" if entry.on_step else name
            if entry.metric is not None:
                out[key] = torch.as_tensor(entry.metric.compute()).detach().float()
                entry.metric.reset()
                continue
            if entry.total is None:
                continue
            total = entry.total
            if entry.reduce_fx == "mean":
                packed = torch.stack([total.float().cpu(), torch.tensor(entry.weight)])
                if entry.sync_dist and self._all_reduce is not None:
                    packed = self._all_reduce(packed, "sum")
                out[key] = packed[0] / packed[1]
            else:
                if entry.sync_dist and self._all_reduce is not None:
                    total = self._all_reduce(total.clone(), entry.reduce_fx)
                out[key] = total
            entry.total, entry.weight = None, 0.0
        return out

    def with_plain_names(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """`metrics` plus each forked `name_step`/`name_epoch` value under its plain `name`.

        Lightning's callback_metrics hold both, so `monitor="loss"` works for a metric
        logged with on_step=True and on_epoch=True.
        """
        if not self._forked:
            return metrics
        out = dict(metrics)
        for key, value in metrics.items():
            for suffix in ("_step", "_epoch"):
                entry = self.entries.get(key.removesuffix(suffix))
                if key.endswith(suffix) and entry is not None and entry.on_step and entry.on_epoch:
                    out[key.removesuffix(suffix)] = value
        return out

    def names(self, attribute: str) -> set[str]:
        """Logged names whose entry has `attribute` (e.g. "prog_bar") set."""
        return {n for n, e in self.entries.items() if getattr(e, attribute)}

    def state_dict(self) -> dict[str, Any]:
        """Running epoch accumulators of tensor values (for an exact mid-epoch resume).

        Metric objects are submodules of the model; the trainer checkpoints their states.
        """
        return {
            name: {"total": entry.total.detach().cpu(), "weight": entry.weight}
            for name, entry in self.entries.items()
            if entry.total is not None
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore accumulators; each is installed when its name is first logged again."""
        self._pending = dict(state)


def size_of_batch(batch: Any) -> int:
    """The batch size: the first dimension of the first tensor found in `batch` (else 1)."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() else 1
    if isinstance(batch, (list, tuple)):
        for item in batch:
            return size_of_batch(item)
    if isinstance(batch, dict):
        for item in batch.values():
            return size_of_batch(item)
    return 1
