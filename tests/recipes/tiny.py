"""A tiny recipe for tests: an MLP on fixed random data, with dropout (RNG-dependent).

launch tests/recipes/tiny.py --max-steps 20
"""

import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module

TRAINER = dict(max_epochs=3, log_every_n_steps=1, enable_progress_bar=False)


def make_data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = (x[:, :4].sum(dim=1) > 0).long()
    return TensorDataset(x, y)


class TinyModel(Module):
    def __init__(
        self,
        hidden: int = 32,
        lr: float = 0.05,
        batch_size: int = 8,
        n_train: int = 96,
        dropout: float = 0.1,
        num_workers: int = 0,
        step_sleep: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, 2),
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.hparams.step_sleep:
            time.sleep(self.hparams.step_sleep)  # gives kill tests time to land mid-run
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_loss_epoch_mean", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
        return {"optimizer": opt, "lr_scheduler": sched}

    def train_dataloader(self):
        return DataLoader(
            make_data(self.hparams.n_train, 0),
            batch_size=self.hparams.batch_size,
            shuffle=True,
            num_workers=self.hparams.num_workers,
        )

    def val_dataloader(self):
        return DataLoader(make_data(32, 1), batch_size=16)


if __name__ == "__main__":
    from launcher import Trainer

    Trainer(**TRAINER, max_steps=10).fit(TinyModel())
