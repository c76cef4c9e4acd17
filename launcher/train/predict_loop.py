"""The prediction loop: `predict_step` over one or more dataloaders, as Lightning's.

    loop = trainer.predict_loop
    predictions = loop.run(loaders, return_predictions=True)   # [out, ...] or [[...], [...]]
    loop.current_batch_indices       # the dataset indices of the batch being predicted
    loop.epoch_batch_indices         # dataloaders x batches x indices, for epoch writers

One pass under `torch.inference_mode()` and the precision's autocast, with the model in eval
mode (`on_predict_model_eval`; every submodule's mode is restored after). Hooks in Lightning's
order: `on_predict_start`, `on_predict_epoch_start`, per batch `on_predict_batch_start` /
`on_predict_batch_end`, `on_predict_epoch_end`, `on_predict_end`; `dataloader_idx` is passed to
the step and the batch hooks only when there are several dataloaders.

Loaders are rebuilt (`prepare_predict_loader`) so the indices of every batch are known, which
is what `BasePredictionWriter` hands to `write_on_batch_end` / `write_on_epoch_end`. Under DDP
each rank predicts every world_size-th sample (Lightning's `UnrepeatedDistributedSampler`:
no padding, so the ranks' shards are disjoint and together hold every sample exactly once; a
rank may get one sample more). Each rank returns its own predictions: nothing is gathered.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator, Sized
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
)

from launcher.errors import UserError
from launcher.train.resolve import limit_batches, overrides

if TYPE_CHECKING:
    from launcher.train.trainer import Trainer


class UnrepeatedShard(Sampler[int]):
    """Every `world_size`-th index of `sampler`'s order from `rank` on; no padding."""

    def __init__(self, sampler: Any, rank: int, world_size: int) -> None:
        self.sampler, self.rank, self.world_size = sampler, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.sampler)[self.rank :: self.world_size])

    def __len__(self) -> int:
        return len(range(self.rank, len(self.sampler), self.world_size))


class IndexBatchSampler(Sampler[list[int]]):
    """Wraps a batch sampler and records the indices of every batch it yields."""

    def __init__(self, batch_sampler: Any) -> None:
        self.batch_sampler = batch_sampler
        self.seen_batch_indices: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        self.seen_batch_indices = []
        for batch in self.batch_sampler:
            self.seen_batch_indices.append(list(batch))
            yield batch

    def __len__(self) -> int:
        return len(self.batch_sampler)


def prepare_predict_loader(loader: Any, rank: int, world_size: int) -> Any:
    """`loader` rebuilt to record its batches' indices and, under DDP, to read its shard.

    Left as given: non-DataLoader iterables and iterable datasets (no indices; every rank
    reads all of it, as in Lightning). A sampler that is already a `DistributedSampler` is
    the user's sharding and is kept.
    """
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        return loader
    if not isinstance(loader.dataset, Sized):
        return loader
    if isinstance(loader.sampler, RandomSampler):
        warnings.warn(
            "Your `predict_dataloader`'s sampler has shuffling enabled, it is strongly "
            "recommended that you turn shuffling off for val/test dataloaders.",
            UserWarning,
            stacklevel=4,
        )
    batch_sampler = loader.batch_sampler
    if world_size > 1 and type(batch_sampler) is BatchSampler:
        sampler = batch_sampler.sampler
        if not isinstance(sampler, DistributedSampler):
            sampler = UnrepeatedShard(sampler, rank, world_size)
        batch_sampler = BatchSampler(sampler, batch_sampler.batch_size, batch_sampler.drop_last)
    if batch_sampler is None:  # batch_size=None: one sample per step, no batching
        return loader
    kwargs: dict[str, Any] = {
        "batch_sampler": IndexBatchSampler(batch_sampler),
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "persistent_workers": loader.persistent_workers,
        "generator": loader.generator,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    return DataLoader(loader.dataset, **kwargs)


def as_loader_list(dataloaders: Any) -> list[Any]:
    """Lightning's sequential `CombinedLoader`: a list/tuple/dict of loaders, or one loader."""
    if isinstance(dataloaders, dict):
        return list(dataloaders.values())
    if isinstance(dataloaders, (list, tuple)):
        return list(dataloaders)
    return [dataloaders]


class PredictLoop:
    """`trainer.predict_loop`: runs prediction and keeps what writers read while it runs."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.return_predictions = True
        self.current_batch_indices: list[int] = []
        self.epoch_batch_indices: list[list[list[int]]] = []  # dataloaders x batches x samples
        self.max_batches: list[int | float] = []
        self._predictions: list[list[Any]] = []  # dataloaders x batches

    @property
    def predictions(self) -> list[Any]:
        """The predictions so far: a list per dataloader, or one list with one dataloader."""
        if not self._predictions:
            return self._predictions
        return self._predictions[0] if len(self._predictions) == 1 else self._predictions

    @property
    def num_dataloaders(self) -> int:
        return len(self.max_batches)

    def run(self, loaders: list[Any], return_predictions: bool) -> list[Any] | None:
        """Predict over `loaders` (prepared ones); the predictions if `return_predictions`."""
        trainer, model = self.trainer, self.trainer.module
        self.return_predictions = return_predictions
        self.max_batches = [limit_batches(dl, trainer.limit_predict_batches) for dl in loaders]
        trainer.num_predict_batches = list(self.max_batches)
        if sum(self.max_batches) == 0:
            return None
        from launcher.callbacks.prediction_writer import BasePredictionWriter

        writers = [cb for cb in trainer.callbacks if isinstance(cb, BasePredictionWriter)]
        on_epoch = any(w.interval.on_epoch for w in writers)
        on_batch = any(w.interval.on_batch for w in writers)
        self._predictions = [[] for _ in loaders]
        self.epoch_batch_indices = [[] for _ in loaders]
        self.current_batch_indices = []
        several = len(loaders) > 1
        for hook in ("predict_step", "on_predict_batch_start", "on_predict_batch_end"):
            _check_dataloader_idx(model, hook, several)
        modes = {name: m.training for name, m in model.named_modules()}
        with torch.inference_mode():
            if overrides(model, "on_predict_model_eval"):
                model.on_predict_model_eval()
            else:
                model.eval()
            trainer.call_hook("on_predict_start")
            trainer.call_hook("on_predict_epoch_start")
            for dataloader_idx, loader in enumerate(loaders):
                self._run_loader(loader, dataloader_idx, several, on_batch or on_epoch, on_epoch)
            trainer.call_hook("on_predict_epoch_end")
            results = self.predictions if return_predictions else None
            if not return_predictions:
                self._predictions = []
            self.epoch_batch_indices = []
            trainer.call_hook("on_predict_end")
        for name, m in model.named_modules():
            m.train(modes.get(name, m.training))
        return results

    def _run_loader(self, loader: Any, dataloader_idx: int, several: bool, track: bool,
                    keep_for_epoch: bool) -> None:  # fmt: skip
        trainer, model = self.trainer, self.trainer.module
        limit, transfer = self.max_batches[dataloader_idx], trainer.transfer_batch
        step_takes_idx = _takes_batch_idx(model.predict_step)
        extra = (dataloader_idx,) if several else ()
        keep = self.return_predictions or keep_for_epoch
        sampler = getattr(loader, "batch_sampler", None)
        indexed = sampler if isinstance(sampler, IndexBatchSampler) else None
        if track and indexed is None:
            warnings.warn(f"Couldn't infer the batch indices fetched from your dataloader: "
                          f"`{type(loader).__name__}`", UserWarning, stacklevel=4)  # fmt: skip
        for batch_idx, batch in enumerate(loader):
            if batch_idx >= limit:
                break
            batch = transfer(batch)
            if track and indexed is not None:  # the sampler runs ahead of the batches
                self.current_batch_indices = indexed.seen_batch_indices[batch_idx]
                if keep_for_epoch:
                    self.epoch_batch_indices[dataloader_idx].append(self.current_batch_indices)
            trainer.call_hook("on_predict_batch_start", batch, batch_idx, *extra)
            args = (batch, batch_idx, *extra) if step_takes_idx else (batch, *extra)
            with trainer.precision.forward_context():
                prediction = model.predict_step(*args)
            trainer.call_hook("on_predict_batch_end", prediction, batch, batch_idx, *extra)
            if keep:
                self._predictions[dataloader_idx].append(_to_cpu(prediction))


def _check_dataloader_idx(model: Any, hook: str, several: bool) -> None:
    """Lightning's check: `dataloader_idx` in the signature exactly when it will be passed."""
    params = inspect.signature(getattr(model, hook)).parameters
    present = "dataloader_idx" in params or any(p.kind is p.VAR_POSITIONAL for p in params.values())
    name = f"{type(model).__name__}.{hook}()"
    if several and not present:
        raise UserError(
            f"You provided multiple `predict_dataloader`, but no `dataloader_idx` argument in "
            f"`{name}`. Try adding `dataloader_idx=0` to its signature."
        )
    idx = params.get("dataloader_idx")
    if not several and idx is not None and idx.default is inspect.Parameter.empty:
        raise UserError(
            f"You provided only a single `predict_dataloader`, but have included `dataloader_idx` "
            f"in `{name}`. Either remove the argument or give it a default value i.e. "
            "`dataloader_idx=0`."
        )


def _takes_batch_idx(step: Any) -> bool:
    """Lightning passes `batch_idx` only to a `predict_step` that accepts it."""
    try:
        params = inspect.signature(step).parameters.values()
    except (TypeError, ValueError):
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    return "batch_idx" in {p.name for p in params} or len(list(params)) >= 2


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value
