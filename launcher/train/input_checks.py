"""Inputs that would train nothing, or train the wrong thing, said before or while it happens.

    check_train_loader(trainer)                    # fit: an empty train dataloader -> UserError
    check_epoch_yielded(trainer, batches)          # an iterable one (no length) that yielded none
    check_same_model(module, state, path)          # resume: another model's checkpoint -> UserError
    watch = LossWatch(detect_anomaly=False)        # the fit loop's loss, warned about once
    watch.no_loss()                                # training_step returned None (host-side count)
    watch.check(loss, trainer)                     # at logging steps: the value is synced anyway
    watch.end_epoch(trainer, batches)              # every batch of the epoch returned None?

The loss is never read on the host just to check it: `check` runs where the loop syncs
anyway (a logging step), or on every step under `detect_anomaly=True`, whose autograd
anomaly mode is slow by design.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from launcher.errors import UserError
from launcher.utilities import rank_zero_warn

if TYPE_CHECKING:
    from launcher.train.trainer import Trainer


def check_train_loader(trainer: Trainer) -> None:
    """An empty train dataloader is a mistake (its dataset, `batch_size` or `drop_last`).

    `limit_train_batches=0` is Lightning's way to skip training on purpose and stays allowed.
    """
    loader = trainer.train_loader
    if loader is None or trainer.limit_train_batches == 0:
        return
    try:
        length = len(loader)
    except TypeError:  # an iterable dataset of unknown length: seen when it runs
        return
    if length == 0:
        dataset = getattr(loader, "dataset", None)
        size = _size(dataset)
        drop = " with drop_last=True" if getattr(loader, "drop_last", False) else ""
        raise UserError(
            f"the train dataloader is empty: 0 batches (dataset of {size} samples, "
            f"batch_size={getattr(loader, 'batch_size', None)}{drop}), so nothing would train. "
            "Check the dataset's path and size, use a smaller batch_size or drop_last=False; "
            "to skip training on purpose, set limit_train_batches=0."
        )


def check_epoch_yielded(trainer: Trainer, batches: int) -> None:
    """After a train epoch: an iterable dataloader (no length, so `check_train_loader` could
    not tell) that yielded no batch at all in the run is the same mistake as an empty one."""
    if batches or trainer.loop.total_batch_idx or trainer.limit_train_batches == 0:
        return
    loader = trainer.train_loader
    dataset = type(getattr(loader, "dataset", None) or loader).__name__
    raise UserError(
        f"the train dataloader yielded no batches in epoch {trainer.loop.epoch} (an "
        f"IterableDataset without a length: {dataset}), so nothing would train. Check where "
        "its __iter__ reads from (a path, a filter, the shard of this rank) and that it yields "
        "samples; to skip training on purpose, set limit_train_batches=0."
    )


def check_same_model(module: torch.nn.Module, state: Mapping[str, Any], source: str) -> None:
    """Raise `UserError` when `state["state_dict"]` does not fit `module` (names or shapes)."""
    saved = state.get("state_dict")
    if not isinstance(saved, Mapping):
        return  # nothing to compare (the loader says what is missing)
    mine = module.state_dict()
    missing = sorted(set(mine) - set(saved))
    unexpected = sorted(set(saved) - set(mine))
    reshaped = [
        f"{k}: {tuple(saved[k].shape)} in the checkpoint, {tuple(mine[k].shape)} now"
        for k in sorted(set(mine) & set(saved))
        if isinstance(saved[k], torch.Tensor) and saved[k].shape != mine[k].shape
    ]
    if not (missing or unexpected or reshaped):
        return
    details = []
    if missing:
        details.append(f"missing {_few(missing)}")
    if unexpected:
        details.append(f"unexpected {_few(unexpected)}")
    if reshaped:
        details.append(f"shapes changed: {_few(reshaped)}")
    raise UserError(
        f"the model no longer matches checkpoint {source}: it holds the weights of another "
        f"model or of other hyperparameters ({'; '.join(details)}). Resume with the recipe "
        "and hyperparameters that wrote it, "
        "or start fresh with --no-resume (and a new --name)."
    )


class LossWatch:
    """Warns once about a loss that cannot train: None on every batch, or not finite."""

    def __init__(self, detect_anomaly: bool = False) -> None:
        self.detect_anomaly = detect_anomaly
        self.none_in_epoch = 0  # batches of this epoch whose training_step returned None
        self._warned: set[str] = set()

    def no_loss(self) -> None:
        self.none_in_epoch += 1

    def check(self, loss: Any, trainer: Trainer) -> None:
        """Warn if `loss` is NaN/inf. Call where it is synced anyway (see the module doc)."""
        if "finite" in self._warned or not isinstance(loss, torch.Tensor):
            return
        value = float(loss.detach().float().sum())
        if math.isfinite(value):
            return
        self._warned.add("finite")
        loop = trainer.loop
        hint = "" if self.detect_anomaly else (
            " Trainer(detect_anomaly=True) names the operation that produced it;"
        )  # fmt: skip
        rank_zero_warn(
            f"training_step returned a non-finite loss ({value}) at global step "
            f"{loop.global_step} (epoch {loop.epoch}, batch {loop.batch_idx - 1}).{hint} "
            "EarlyStopping(monitor=..., check_finite=True) stops such a run.",
            stacklevel=2,
        )

    def end_epoch(self, trainer: Trainer, batches: int) -> None:
        """Warn (once) when every one of the epoch's `batches` returned None; then reset."""
        nones, self.none_in_epoch = self.none_in_epoch, 0
        if batches and nones == batches and "none" not in self._warned:
            self._warned.add("none")
            loop = trainer.loop
            rank_zero_warn(
                f"training_step returned None for all {batches} batches of epoch {loop.epoch} "
                f"(through global step {loop.global_step}): nothing was trained. Return the "
                'loss tensor (or a dict with "loss"); None skips a batch, as in Lightning.',
                stacklevel=2,
            )


def _few(items: list[str], n: int = 4) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _size(dataset: Any) -> str:
    try:
        return str(len(dataset))
    except TypeError:
        return "unknown"
