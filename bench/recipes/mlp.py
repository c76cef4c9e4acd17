"""The MLP of `bench/overhead.py` as a launcher recipe, for `bench/ddp.py` (no logger).

    launch bench/recipes/mlp.py --accelerator cpu --devices 2 --max-epochs 2
    python bench/ddp.py --quick                    # runs it against a hand-written DDP loop

A 784-128-10 MLP, Adam, per-process batch 64 over `bench.common.make_data(300)` (19200 random
samples, sharded across the processes). Rank 0 prints one line for the benchmark to parse:

    BENCH loop_seconds=4.123 loop_cpu=3.9 steps=1500

the wall-clock and the process CPU time from the first to the last training step of rank 0.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

# `launch` imports this file by path: make `bench.common` importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import BATCH, make_data, make_mlp  # noqa: E402
from launcher import Module  # noqa: E402

# The same work as the hand-written DDP loop it is compared with: no logger, no epoch-end
# checkpoints, no progress output (bench/overhead.py measures those). What stays is all of the
# Trainer's DDP machinery, including the all-reduce every 8 steps that agrees on preemption
# signals. `--set trainer.enable_checkpointing=true --set trainer.enable_progress_bar=true`
# (or `python bench/ddp.py --with-defaults`) measures the defaults instead.
TRAINER = dict(
    max_epochs=10,
    logger=False,
    precision="32-true",
    enable_checkpointing=False,
    enable_progress_bar=False,
)


class BenchMLP(Module):
    """Logs `train_loss` every step (progress bar on rank 0); times its training steps."""

    def __init__(self, lr: float = 1e-3, batches: int = 300):
        super().__init__()
        self.save_hyperparameters()
        self.net = make_mlp()
        self._first: tuple[float, float] | None = None
        self._last = (0.0, 0.0)
        self._steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        now = time.perf_counter(), time.process_time()
        if self._first is None:
            self._first = now
        self._last, self._steps = now, self._steps + 1
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def train_dataloader(self) -> DataLoader:
        return DataLoader(make_data(self.hparams.batches), batch_size=BATCH, shuffle=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def on_fit_end(self) -> None:
        if self.global_rank == 0 and self._first is not None:
            wall, cpu = (b - a for a, b in zip(self._first, self._last, strict=True))
            print(f"BENCH loop_seconds={wall:.6f} loop_cpu={cpu:.6f} steps={self._steps}",
                  flush=True)  # fmt: skip
