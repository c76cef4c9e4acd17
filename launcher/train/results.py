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

# Which reductions `sync_dist` may use; the mean is the batch-size-weighted one. Lightning
# also takes the torch functions and "avg".
_REDUCE = {"mean", "sum", "max", "min"}
_REDUCE_ALIASES = {"avg": "mean", torch.mean: "mean", torch.sum: "sum", torch.max: "max",
                   torch.min: "min"}  # fmt: skip


@dataclass
class _Entry:
    on_step: bool
    on_epoch: bool
    prog_bar: bool
    logger: bool
    sync_dist: bool
    reduce_fx: str
    sync_group: Any = None  # a process group (`sync_dist_group`), None: every rank
    enable_graph: bool = False  # keep the autograd graph of step values (Lightning's option)
    fresh: bool = False  # logged since the last epoch_metrics(): its epoch value is due
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
        # Logged in an `on_*_epoch_end` hook: the epoch's value at once (Lightning computes
        # epoch values after those hooks); `take_epoch_end_values` hands them over.
        self.epoch_end_values: dict[str, torch.Tensor] = {}

    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool = True,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        sync_dist: bool = False,
        reduce_fx: Any = "mean",
        batch_size: int | None = None,
        enable_graph: bool = False,
        sync_dist_group: Any = None,
        rank_zero_only: bool = False,
        at_epoch_end: bool = False,
    ) -> None:
        """Record one value; `at_epoch_end` (an `on_*_epoch_end` hook) makes it the epoch's value.

        `rank_zero_only`: only rank 0 calls this, so the value is never synced (a collective
        would hang), as in Lightning.
        """
        entry = self.entries.get(name)
        # A plain tensor under a name logged before (every step's case) skips straight to the
        # bookkeeping below; the rest creates the entry or handles metric objects and numbers.
        if entry is None or type(value) is not torch.Tensor or at_epoch_end:
            if entry is None:
                entry = self._new_entry(name, prog_bar, logger, on_step, on_epoch,
                                        sync_dist and not rank_zero_only, reduce_fx)  # fmt: skip
                entry.sync_group, entry.enable_graph = sync_dist_group, enable_graph
            if hasattr(value, "compute") and hasattr(value, "reset"):
                entry.metric, entry.fresh = value, True
                if at_epoch_end:
                    self._set_epoch_end_value(name, entry)
                elif entry.on_step:
                    cached = getattr(value, "_forward_cache", None)
                    if cached is not None:
                        self.step_values[name] = cached
                return
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(float(value))
        if not entry.enable_graph:
            value = value.detach()
        if at_epoch_end:
            entry.total, entry.weight, entry.fresh = None, 0.0, True
            self._accumulate(entry, value, 1)
            self._set_epoch_end_value(name, entry)
            return
        if entry.on_step:
            if entry.sync_dist and self._all_reduce is not None:
                value = self._all_reduce(value.clone().float(), "mean", entry.sync_group)
            self.step_values[name] = value
        if entry.on_epoch:
            entry.fresh = True
            self._accumulate(entry, value, batch_size)

    def _set_epoch_end_value(self, name: str, entry: _Entry) -> None:
        value = self._epoch_value(entry)
        if value is not None:
            self.epoch_end_values[_epoch_key(name, entry)] = value

    def take_epoch_end_values(self) -> dict[str, torch.Tensor]:
        """What the `on_*_epoch_end` hooks logged (names as loggers see them); then cleared."""
        out, self.epoch_end_values = self.epoch_end_values, {}
        return out

    def _new_entry(self, name: str, prog_bar: bool, logger: bool, on_step: bool | None,
                   on_epoch: bool | None, sync_dist: bool, reduce_fx: Any) -> _Entry:  # fmt: skip
        """A new entry for `name` with Lightning's defaults (restoring a resumed accumulator)."""
        training = self.stage == "train"
        reduce_fx = _REDUCE_ALIASES.get(reduce_fx, reduce_fx)
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
        """Epoch values of what was logged with `on_epoch` since the last call; then reset."""
        self.batch = None  # don't hold the epoch's last batch (GPU memory) any longer
        out: dict[str, torch.Tensor] = {}
        for name, entry in self.entries.items():
            if entry.on_epoch and entry.fresh:
                value = self._epoch_value(entry)
                if value is not None:
                    out[_epoch_key(name, entry)] = value
        return out

    def _epoch_value(self, entry: _Entry) -> torch.Tensor | None:
        """The entry's epoch value (synced if asked); its accumulator or metric is reset."""
        entry.fresh = False
        if entry.metric is not None:
            value = torch.as_tensor(entry.metric.compute()).detach().float()
            entry.metric.reset()
            return value
        total = entry.total
        if total is None:
            return None
        sync = entry.sync_dist and self._all_reduce is not None
        if entry.reduce_fx == "mean":
            packed = torch.stack([total.float().detach().cpu(), torch.tensor(entry.weight)])
            if sync:
                packed = self._all_reduce(packed, "sum", entry.sync_group)
            value = packed[0] / packed[1]
        else:
            value = self._all_reduce(total.clone(), entry.reduce_fx, entry.sync_group) if sync \
                else total  # fmt: skip
        entry.total, entry.weight = None, 0.0
        return value

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


def _epoch_key(name: str, entry: _Entry) -> str:
    return f"{name}_epoch" if entry.on_step else name


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
