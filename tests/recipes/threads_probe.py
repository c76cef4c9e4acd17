"""A recipe that reports what each process trains with: torch's threads and OMP_NUM_THREADS.

    launch tests/recipes/threads_probe.py --accelerator cpu --devices 2

Every rank writes `RUN_DIR/threads_rank<N>.json` at fit start (tests/train/test_cpu_threads.py,
tests/backends/test_slurm.py and test_ray.py compare it with the rule and the run's params).
"""

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module

TRAINER = dict(max_steps=2, log_every_n_steps=1, enable_progress_bar=False)


class ThreadsProbe(Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def on_train_start(self):
        report = {"threads": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")}
        path = Path(self.trainer.run_dir) / f"threads_rank{self.global_rank}.json"
        path.write_text(json.dumps(report))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(8, 4, generator=generator), torch.randn(8, 1))
        return DataLoader(data, batch_size=4)
