"""A small transformer-ish recipe for FSDP tests: an embedding, a ModuleList of residual
blocks, a head; fixed random token data.

launch tests/recipes/blocks.py --set trainer.strategy=fsdp --max-steps 20
"""

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module

TRAINER = dict(max_epochs=2, log_every_n_steps=1, enable_progress_bar=False)
VOCAB, SEQ = 32, 8


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mix = nn.Linear(SEQ, SEQ)  # across positions
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mix(self.norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.mlp(self.norm(x))


class BlocksModel(Module):
    def __init__(self, width: int = 16, depth: int = 3, lr: float = 0.01, batch_size: int = 8,
                 n_train: int = 96, step_sleep: float = 0.0, shard_in_configure_model: bool = False,
                 manual: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.head = nn.Linear(width, VOCAB)
        self.automatic_optimization = not manual

    def configure_model(self) -> None:
        if self.hparams.shard_in_configure_model:  # Lightning's ModelParallelStrategy way
            from torch.distributed.fsdp import fully_shard

            for block in self.blocks:
                fully_shard(block)

    def on_train_start(self) -> None:
        # What each rank holds: FSDP's local shards (tests compare them with the whole).
        from torch.distributed.tensor import DTensor

        local = sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel()
                    for p in self.parameters())  # fmt: skip
        total = sum(p.numel() for p in self.parameters())
        path = Path(self.trainer.run_dir) / f"params_rank{self.trainer.global_rank}.json"
        path.write_text(json.dumps({"local": local, "total": total}))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def training_step(self, batch, batch_idx):
        if self.hparams.step_sleep:
            time.sleep(self.hparams.step_sleep)  # gives kill tests time to land mid-run
        tokens, target = batch
        loss = F.cross_entropy(self(tokens).flatten(0, 1), target.flatten())
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        tokens, target = batch
        self.log("val_loss", F.cross_entropy(self(tokens).flatten(0, 1), target.flatten()))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    def _data(self, n: int, seed: int) -> TensorDataset:
        g = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, VOCAB, (n, SEQ), generator=g)
        return TensorDataset(tokens, (tokens + 1) % VOCAB)

    def train_dataloader(self):
        data = self._data(self.hparams.n_train, 0)
        return DataLoader(data, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self._data(32, 1), batch_size=16)
