"""`ResumableSampler` and the dataloader rewiring that makes mid-epoch resume exact.

The order of indices is a pure function of (seed, epoch, rank, world size), and the sampler
can start at any position inside an epoch, so a resumed run sees exactly the batches the
uninterrupted run would have seen. Works with `num_workers > 0`: indices are drawn in the
main process.

Iterable datasets cannot be re-positioned by a sampler: they are used as given, and a run
resumed mid-epoch iterates them from their start again, so that resume is not exact. The
trainer does not checkpoint their state (nor a user's own sampler's).

    sampler = ResumableSampler(len(ds), shuffle=True, seed=0, rank=0, world_size=2)
    sampler.set_epoch(3); sampler.set_start(640)   # skip the first 640 samples of epoch 3
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, RandomSampler, Sampler, SequentialSampler

from launcher.train.seed import seed_worker, seeds_workers


class ResumableSampler(Sampler[int]):
    """Shards a map-style dataset by rank, shuffles per epoch, and resumes mid-epoch."""

    def __init__(
        self,
        length: int,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        self.start = 0
        self.global_start = 0
        if drop_last:
            self.per_rank = length // world_size
        else:
            self.per_rank = -(-length // world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, start: int) -> None:
        """Skip the first `start` indices of this rank's share of the current epoch."""
        self.start = start

    def set_global_start(self, consumed: int) -> None:
        """The current epoch's first `consumed` samples of the shared order were seen (by a
        run of another world size): deal only the rest to this world's ranks."""
        self.global_start = consumed

    def remaining_per_rank(self, consumed: int) -> int:
        """How many indices each rank gets of an epoch whose first `consumed` were seen."""
        rest = max(0, self.length - consumed)
        return rest // self.world_size if self.drop_last else -(-rest // self.world_size)

    def indices(self) -> list[int]:
        """This rank's full index list for the current epoch."""
        if self.shuffle:
            gen = torch.Generator()
            gen.manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.length, generator=gen).tolist()
        else:
            order = list(range(self.length))
        if self.global_start:  # resumed at another world size: the rest, dealt anew
            rest = order[self.global_start :]
            total = self.remaining_per_rank(self.global_start) * self.world_size
            if total > len(rest):  # padded from the epoch's start, as DistributedSampler
                rest += (order * (total // max(1, len(order)) + 1))[: total - len(rest)]
            return rest[:total][self.rank :: self.world_size]
        total = self.per_rank * self.world_size
        if total > len(order):  # pad by wrapping around, like DistributedSampler
            order += (order * (total // max(1, len(order)) + 1))[: total - len(order)]
        return order[:total][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        indices = self.indices()
        self.global_start = 0
        start, self.start = self.start, 0  # a later epoch starts from the beginning
        return iter(indices[start:])

    def __len__(self) -> int:
        return self.per_rank

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seed": self.seed, "world_size": self.world_size}


def make_resumable(
    loader: DataLoader, seed: int, rank: int, world_size: int, shuffle: bool | None = None
) -> DataLoader:
    """Rebuild `loader` around a `ResumableSampler`; leave iterable or custom-sampled ones."""
    if isinstance(loader.dataset, IterableDataset) or not isinstance(loader.dataset, Sized):
        return loader
    if not isinstance(loader.sampler, (RandomSampler, SequentialSampler, ResumableSampler)):
        return loader  # the user's own sampler wins; documented as not exactly resumable
    if loader.batch_size is None:
        return loader
    if shuffle is None:
        shuffle = isinstance(loader.sampler, RandomSampler)
    sampler = ResumableSampler(len(loader.dataset), shuffle, seed, rank, world_size)
    kwargs: dict[str, Any] = {
        "batch_size": loader.batch_size,
        "sampler": sampler,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "drop_last": loader.drop_last,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn
        or (functools.partial(seed_worker, rank=rank) if seeds_workers() else None),
        "multiprocessing_context": loader.multiprocessing_context,
        "persistent_workers": loader.persistent_workers,
        # A private generator keeps the global RNG untouched when iterators are created
        # (DataLoader draws worker seeds from it), so a resumed run's RNG stream matches.
        "generator": torch.Generator(),
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    return DataLoader(loader.dataset, **kwargs)


def start_epoch(
    loader: DataLoader, epoch: int, seed: int, skip_batches: int = 0, global_start: int = 0
) -> None:
    """Position `loader` at `skip_batches` batches into `epoch` before iterating it; after
    a resume at another world size, into the rest of the epoch after its first
    `global_start` samples (`ResumableSampler.set_global_start`)."""
    sampler, generator = loader.sampler, loader.generator
    if isinstance(generator, torch.Generator):
        generator.manual_seed(seed * 7_919 + epoch)
    if isinstance(sampler, ResumableSampler):
        sampler.seed = seed  # a resumed run's seed comes from its checkpoint
        sampler.set_epoch(epoch)
        sampler.set_start(skip_batches * (loader.batch_size or 1))  # make_resumable: batched
        sampler.set_global_start(global_start)
    else:
        set_epoch = getattr(sampler, "set_epoch", None)  # e.g. a DistributedSampler
        if set_epoch is not None:
            set_epoch(epoch)
