"""The blocks recipe, recording which samples each rank trains on, and stopping itself.

launch tests/recipes/sample_ids.py --set stop_steps=3,6   # SIGTERM at step 3, then at 6
Each attempt (loop.resumes) sends itself SIGTERM once it reaches its step of `stop_steps`;
`samples_rank<R>.jsonl` in the run dir gets one line per batch: epoch, step, sample ids.
"""

import json
import os
import signal
from pathlib import Path

import torch
import torch.nn.functional as F
from blocks import SEQ, TRAINER, VOCAB, BlocksModel  # noqa: F401 (TRAINER: the tests')
from torch.utils.data import DataLoader, Dataset


class Numbered(Dataset):
    """Token rows with their index, so a test can tell which samples were seen."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.tokens = torch.randint(0, VOCAB, (n, SEQ), generator=g)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int):
        return self.tokens[i], (self.tokens[i] + 1) % VOCAB, i


class SampleIdsModel(BlocksModel):
    def __init__(self, n_train: int = 48, batch_size: int = 4, stop_steps: str = "") -> None:
        super().__init__(n_train=n_train, batch_size=batch_size)
        self.stop_steps = [int(s) for s in str(stop_steps).split(",") if s]

    def configure_model(self) -> None:
        """The trainer shards (BlocksModel's hyperparameters are not all saved here)."""

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.01)

    def on_train_start(self) -> None:
        """After a resume: the whole model and optimizer state as loaded (rank 0 keeps it)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        trainer = self.trainer
        if not trainer.loop.resumes:  # (a fresh optimizer would be initialised by a dry step)
            return
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = {
            "model": get_model_state_dict(self, options=options),
            "optim": get_optimizer_state_dict(self, trainer.optimizers[0], options=options),
        }
        if trainer.is_global_zero:
            torch.save(state, Path(trainer.run_dir) / f"start_{trainer.loop.resumes}.pt")

    def training_step(self, batch, batch_idx):
        tokens, target, ids = batch
        trainer = self.trainer
        line = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "world": trainer.world_size,
            "ids": ids.tolist(),
        }
        path = Path(trainer.run_dir) / f"samples_rank{trainer.global_rank}.jsonl"
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")
        loss = F.cross_entropy(self(tokens).flatten(0, 1), target.flatten())
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        stops, attempt = self.stop_steps, self.trainer.loop.resumes
        if attempt < len(stops) and self.trainer.global_step == stops[attempt]:
            os.kill(os.getpid(), signal.SIGTERM)

    def train_dataloader(self):
        return DataLoader(
            Numbered(self.hparams.n_train), batch_size=self.hparams.batch_size, shuffle=True
        )
