"""Resuming at another world size: where in the epoch the new ranks continue.

    state = sampler_state(trainer)           # the checkpoint's "launcher_sampler"
    load_sampler_state(trainer, state)       # after "loops": reshards the data position

The model and optimizer reshard through DCP (`sharded_checkpoint.py`) or load whole (the
full format); this is the data's part. Every rank of a run takes every world-size-th sample
of one shared order per epoch (`ResumableSampler`), so a checkpoint taken `batch_idx`
batches into an epoch has seen that order's first `batch_idx * batch_size * world_size`
samples. A run of another world size deals the rest of that order to its own ranks and
continues at the batch index that leaves each rank exactly its share to go: the epoch
finishes with every sample seen once (padding aside, as in `DistributedSampler`, when the
rest does not divide by the new world size).

What is exact and what is not: the global sample count, the set of samples of the
interrupted epoch and every later epoch's order (a function of seed, epoch and world size)
are; the order of the interrupted epoch's rest differs from an uninterrupted run of either
size, the global batch (per-rank batch times world size) changes, so do mid-epoch
validation points (`val_check_interval` counts per-rank batches), and per-rank state is
kept by the ranks both sizes share (rank r gets old rank r's RNG, running epoch sums and
metric states; old ranks beyond the new size are dropped, new ones start fresh), so the
interrupted epoch's means cover only those ranks' batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from launcher.errors import UserError
from launcher.train.sampler import ResumableSampler

if TYPE_CHECKING:
    from launcher.train.trainer import Trainer


def _sampler(trainer: Trainer) -> ResumableSampler | None:
    loader = trainer.train_loader
    sampler = getattr(loader, "sampler", None)
    return sampler if isinstance(sampler, ResumableSampler) else None


def epoch_samples(trainer: Trainer) -> int:
    """Samples of the shared order the current epoch has seen, over every rank."""
    loop, loader = trainer.loop, trainer.train_loader
    if loop.epoch_done:  # the checkpoint resumes at the next epoch's start
        return 0
    batch_size = getattr(loader, "batch_size", None) or 1
    done = loop.batch_idx - loop.offset_batch
    return loop.sample_offset + done * batch_size * trainer.world_size


def sampler_state(trainer: Trainer) -> dict[str, Any]:
    """The data order's seed, the world size, and where in the epoch the run stands."""
    return {"seed": trainer.loop.seed, "world_size": trainer.world_size,
            "epoch_samples": epoch_samples(trainer)}  # fmt: skip


def load_sampler_state(trainer: Trainer, state: dict[str, Any]) -> None:
    """Restore the seed; at another world size, reshard the epoch's position (after the
    loop's state is loaded)."""
    loop = trainer.loop
    trainer.seed = loop.seed = state["seed"]
    saved_world = state.get("world_size", trainer.world_size)
    if saved_world == trainer.world_size or loop.batch_idx == loop.sample_offset == 0:
        return
    sampler = _sampler(trainer)
    if sampler is None:
        raise UserError(
            f"this checkpoint was taken {loop.batch_idx} batches into epoch {loop.epoch} by "
            f"{saved_world} processes; resuming it with {trainer.world_size} needs the trainer's "
            "own sampler (a map-style dataset, a DataLoader without a custom sampler) to deal "
            f"the rest of the epoch anew. Resume with {saved_world} processes."
        )
    if trainer.limit_train_batches is not None:
        raise UserError(
            f"limit_train_batches counts batches per process: a checkpoint taken mid-epoch by "
            f"{saved_world} processes cannot continue with {trainer.world_size} under it. "
            f"Resume with {saved_world} processes, or without limit_train_batches."
        )
    consumed = state.get("epoch_samples")
    if consumed is None:  # written before this was recorded: the old world's batches
        batch_size = getattr(trainer.train_loader, "batch_size", None) or 1
        consumed = loop.batch_idx * batch_size * saved_world
    loader = trainer.train_loader
    batch_size = getattr(loader, "batch_size", None) or 1
    share = sampler.remaining_per_rank(consumed)
    drop_last = bool(getattr(loader, "drop_last", False))
    to_go = share // batch_size if drop_last else -(-share // batch_size)
    total = int(trainer.num_training_batches)
    loop.sample_offset = consumed
    loop.batch_idx = loop.offset_batch = max(0, total - to_go)
    if trainer.is_global_zero:
        print(f"[launcher] world size {saved_world} -> {trainer.world_size}: epoch "
              f"{loop.epoch} continues after {consumed} samples, {to_go} batches per process "
              "to go", flush=True)  # fmt: skip
