"""`LoopState`: where the fit loop stands, the part of a checkpoint that says where to resume.

    loop = LoopState(accumulate_grad_batches=4)
    loop.global_step += 1                  # the trainer advances it
    state = loop.state_dict()              # {"epoch", "global_step", "batch_idx", ...}
    loop.load_state_dict(state)            # a resumed run continues at that batch

`trainer.loop` is this object; `trainer.current_epoch` and `trainer.global_step` read from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LoopState:
    """The fit loop's position: epoch, optimizer steps, batches consumed, and run counters.

    `epoch_done` is True between an epoch's last batch and the start of the next epoch (its
    end-of-epoch work: validation, schedulers, callbacks); a checkpoint saved then resumes
    at the next epoch. `seed` is the seed every rank agreed on (it fixes the data order);
    `resumes` counts how many times this run was resumed; `finished` is set once `fit` has
    completed (a checkpoint that says so is not resumed). `total_batch_idx` counts batches
    across epochs (validation every N batches with `check_val_every_n_epoch=None` counts it);
    `last_val_batch` is the `total_batch_idx` after which validation last ran (-1: never), so
    a run resumed at a validation point does not validate there twice.
    """

    epoch: int = 0
    global_step: int = 0
    # Batches that ended with an optimizer step, over all epochs (Lightning's
    # `_batches_that_stepped`): the loggers' step. Equals global_step under automatic
    # optimization; under manual optimization each `opt.step()` is a global step instead.
    batches_stepped: int = 0
    batch_idx: int = 0  # batches of the current epoch already consumed
    epoch_done: bool = False
    seed: int = 0
    resumes: int = 0
    finished: bool = False
    total_batch_idx: int = 0
    last_val_batch: int = -1
    accumulate_grad_batches: int = 1  # a setting, not state: gives the saved micro-step
    # After a resume at another world size (train/reshard.py): the current epoch's samples
    # seen before it, and the batch_idx this world size continued at (0, 0: none).
    sample_offset: int = 0
    offset_batch: int = 0

    def next_epoch(self) -> None:
        """Move to the start of the next epoch."""
        self.epoch += 1
        self.batch_idx, self.epoch_done = 0, False
        self.sample_offset = self.offset_batch = 0

    def state_dict(self) -> dict[str, Any]:
        epoch, batch_idx = self.epoch, self.batch_idx
        offset, offset_batch = self.sample_offset, self.offset_batch
        if self.epoch_done:  # saved from an epoch-end hook: resume at the next epoch
            epoch, batch_idx, offset, offset_batch = epoch + 1, 0, 0, 0
        return {
            "epoch": epoch,
            "global_step": self.global_step,
            "batches_stepped": self.batches_stepped,
            "batch_idx": batch_idx,
            "micro_step": batch_idx % self.accumulate_grad_batches,
            "finished": self.finished,
            "resumes": self.resumes,
            "total_batch_idx": self.total_batch_idx,
            "last_val_batch": self.last_val_batch,
            "sample_offset": offset,
            "offset_batch": offset_batch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where `state` left off; counts one more resume."""
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.batches_stepped = state.get("batches_stepped", self.global_step)  # older files
        self.batch_idx, self.epoch_done = state["batch_idx"], False
        self.finished = bool(state["finished"])
        self.resumes = state.get("resumes", 0) + 1  # older checkpoints did not count them
        # Older checkpoints: batches across epochs unknown, the current epoch's are a floor.
        self.total_batch_idx = state.get("total_batch_idx", self.batch_idx)
        self.last_val_batch = state.get("last_val_batch", -1)
        self.sample_offset = state.get("sample_offset", 0)
        self.offset_batch = state.get("offset_batch", 0)
