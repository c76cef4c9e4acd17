"""ResumableSampler: order is a function of (seed, epoch, rank, world size); mid-epoch start."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from launcher.train.sampler import ResumableSampler, make_resumable, start_epoch


def test_shards_are_disjoint_and_cover_the_epoch() -> None:
    shards = [list(ResumableSampler(10, True, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert all(len(s) == 4 for s in shards)  # padded to 12 like DistributedSampler
    assert set().union(*shards) == set(range(10))
    assert list(ResumableSampler(10, True, 3, 0, 3)) == shards[0]  # a pure function


def test_epochs_differ_and_start_skips_exactly() -> None:
    sampler = ResumableSampler(20, True, seed=0)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    sampler.set_epoch(2)
    assert list(sampler) != epoch1
    sampler.set_epoch(1)
    sampler.set_start(7)
    assert list(sampler) == epoch1[7:]
    assert list(sampler) == epoch1  # the start only applies once


def test_mid_epoch_resume_with_worker_processes_sees_the_same_batches() -> None:
    data = TensorDataset(torch.arange(64).float().unsqueeze(1))
    user_loader = DataLoader(data, batch_size=4, shuffle=True, num_workers=2)
    full = make_resumable(user_loader, seed=5, rank=0, world_size=1)
    start_epoch(full, epoch=2, seed=5)
    batches = [b[0].flatten().tolist() for b in full]
    resumed = make_resumable(user_loader, seed=5, rank=0, world_size=1)
    start_epoch(resumed, epoch=2, seed=5, skip_batches=6)
    assert [b[0].flatten().tolist() for b in resumed] == batches[6:]


def test_iterable_and_custom_samplers_are_left_alone() -> None:
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    stream = DataLoader(Stream(), batch_size=2)
    assert make_resumable(stream, 0, 0, 1) is stream
    custom = DataLoader(list(range(8)), sampler=[7, 6, 5], batch_size=2)
    assert make_resumable(custom, 0, 0, 1) is custom
