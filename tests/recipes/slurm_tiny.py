"""A tiny recipe for the SLURM tests: an MLP on fixed random tensors, momentum SGD.

    launch tests/recipes/slurm_tiny.py --cluster local_slurm --nodes 2 --devices 1 \
        --accelerator cpu --max-steps 30

`step_sleep` slows each step down so a signal can land mid-run; with `slow_while=PATH` only
while that file exists (a test removes it once the job was requeued, so the resumed run is
fast). The weights depend on neither.
"""

import os
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module

TRAINER = dict(
    max_steps=30,
    max_epochs=100,
    log_every_n_steps=1,
    enable_progress_bar=False,
)


def random_dataset(n: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=generator)
    y = (x @ torch.linspace(-1.0, 1.0, 8)).unsqueeze(1) + 0.1 * torch.randn(
        n, 1, generator=generator
    )
    return TensorDataset(x, y)


class SlurmTiny(Module):
    def __init__(
        self,
        hidden: int = 16,
        lr: float = 0.05,
        batch_size: int = 4,
        step_sleep: float = 0.0,
        slow_while: str = "",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        slow_while = self.hparams.slow_while
        if self.hparams.step_sleep and (not slow_while or os.path.exists(slow_while)):
            time.sleep(self.hparams.step_sleep)
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)

    def train_dataloader(self):
        return DataLoader(random_dataset(64, 0), batch_size=self.hparams.batch_size, shuffle=True)
