"""A tiny recipe for the Ray tests: an MLP on fixed random tensors, checkpointed every 4 steps.

    launch tests/recipes/ray_tiny.py --backend ray --address http://127.0.0.1:8275 \
        --accelerator cpu --nodes 2 --devices 1

`probe` is a stand-in worker (`RayBackend(worker="ray_tiny:probe")`): it checks the Ray
plumbing (ranks, process group, recipe shipped) without training.
"""

import json
import os
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module

TRAINER = dict(
    max_steps=40,
    checkpoint_every_n_steps=4,
    signal_sync_every_n_steps=2,  # with several ranks, checkpoints land on these boundaries
    log_every_n_steps=1,
    enable_progress_bar=False,
    seed=7,
)


def make_data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, :3].sum(dim=1) > 0).long()
    return TensorDataset(x, y)


class RayTinyModel(Module):
    def __init__(self, hidden: int = 16, lr: float = 0.05, batch_size: int = 4,
                 step_sleep: float = 0.0, step_marker_dir: str = ""):  # fmt: skip
        super().__init__()
        self.save_hyperparameters()
        self._marked = False
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.hparams.step_marker_dir and not self._marked and self.global_rank == 0:
            # bench/ray_startup.py: when this process took its first step
            marker = os.path.join(self.hparams.step_marker_dir, f"first_step.{os.getpid()}")
            with open(marker, "w") as f:
                f.write(repr(time.time()))
            self._marked = True
        if self.hparams.step_sleep:
            time.sleep(self.hparams.step_sleep)  # gives the kill test time to land mid-run
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)

    def train_dataloader(self):
        return DataLoader(make_data(64, 0), batch_size=self.hparams.batch_size, shuffle=True)


def probe(spec_path: str) -> int:
    """A worker that reports what Ray gave it: rank variables, process group, recipe path."""
    import torch.distributed as dist

    from launcher.cluster_env import ClusterEnvironment
    from launcher.spec import LaunchSpec

    spec = LaunchSpec.read(spec_path)
    env = ClusterEnvironment.detect()
    total = torch.ones(1)
    dist.all_reduce(total)
    report = {
        "env": {
            k: os.environ.get(k)
            for k in (
                "RANK",
                "LOCAL_RANK",
                "WORLD_SIZE",
                "MASTER_ADDR",
                "MASTER_PORT",
                "LAUNCHER_CLUSTER",
                "LAUNCHER_RAY_ATTEMPT",
            )
        },  # fmt: skip
        "cluster_env": {"kind": env.kind, "rank": env.global_rank, "world": env.world_size},
        "backend": dist.get_backend(),
        "all_reduce": total.item(),
        "recipe": spec.recipe,
        "recipe_exists": os.path.isfile(spec.recipe),
        "pid": os.getpid(),
    }
    path = os.path.join(spec.run_dir, f"probe_rank{env.global_rank}.json")
    with open(path, "w") as f:
        json.dump(report, f)
    print(f"probe says hello from rank {env.global_rank}")
    return 0
