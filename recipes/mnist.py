"""MNIST: the seed document's Lightning example (an MLP) with only the imports changed.

    python recipes/mnist.py                                         # plain Lightning-style run
    launch recipes/mnist.py --set data_dir=/datasets                # through launch
    launch recipes/mnist.py --nodes 2 --gpus 8 --backend slurm --set data_dir=/shared/data

Nothing is downloaded (cluster nodes are often offline): put the four uncompressed IDX files
under `<data_dir>/MNIST/raw/` first:

    train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

e.g. on a machine with internet access,
`python -c "from torchvision.datasets import MNIST; MNIST('data', download=True)"`, then copy
`data/MNIST/raw` to the cluster.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy

from launcher import Module, Trainer
from launcher.callbacks import EarlyStopping, ModelCheckpoint
from launcher.errors import UserError

TRAINER = dict(max_epochs=5)

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def mnist_dataset(data_dir: str, train: bool):
    """torchvision's MNIST from `<data_dir>/MNIST/raw`, or a UserError naming the missing files."""
    from torchvision.datasets import MNIST
    from torchvision.transforms import ToTensor

    raw = Path(data_dir).expanduser().resolve() / "MNIST" / "raw"
    missing = [name for name in RAW_FILES if not (raw / name).is_file()]
    if missing:
        zipped = [name for name in missing if (raw / f"{name}.gz").is_file()]
        hint = f" ({', '.join(n + '.gz' for n in zipped)} found: gunzip them)" if zipped else ""
        raise UserError(
            f"MNIST files missing in {raw}: {', '.join(missing)}{hint}. This recipe never "
            f"downloads (compute nodes are often offline): put the uncompressed IDX files "
            f"{', '.join(RAW_FILES)} in {raw}, or point --set data_dir=DIR at a directory "
            "holding MNIST/raw/. To fetch them on a machine with internet access: "
            "python -c \"from torchvision.datasets import MNIST; MNIST('data', download=True)\""
        )
    return MNIST(str(raw.parent.parent), train=train, download=False, transform=ToTensor())


class MNISTModel(Module):
    """The seed's MLP; `--set` can change hidden_dim, lr, data_dir, batch_size, num_workers."""

    def __init__(
        self,
        hidden_dim: int = 128,
        lr: float = 5e-4,
        data_dir: str = "./data",
        batch_size: int = 32,
        num_workers: int = 4,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(28 * 28, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 10)
        )
        # `pl.metrics.Accuracy()` in the seed; "micro" is plain accuracy (torchmetrics' default
        # for multiclass is the per-class mean).
        self.train_acc = MulticlassAccuracy(num_classes=10, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=10, average="micro")

    def forward(self, x):
        return self.layers(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("train_loss", loss, prog_bar=True)
        self.train_acc(logits, y)
        self.log("train_acc", self.train_acc, prog_bar=True, on_step=False, on_epoch=True)
        return loss  # the Trainer calls backward() and optimizer.step()

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("val_loss", loss, prog_bar=True)
        self.val_acc(logits, y)
        self.log("val_acc", self.val_acc, prog_bar=True, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def configure_callbacks(self):
        return [
            ModelCheckpoint(
                monitor="val_acc",
                mode="max",
                save_top_k=1,
                filename="mnist-best-{epoch:02d}-{val_acc:.2f}",
            ),
            EarlyStopping(monitor="val_loss", mode="min", patience=3),
        ]

    def train_dataloader(self):
        return self._loader(train=True)

    def val_dataloader(self):
        return self._loader(train=False)

    def _loader(self, train: bool) -> DataLoader:
        return DataLoader(
            mnist_dataset(self.hparams.data_dir, train=train),
            batch_size=self.hparams.batch_size,
            shuffle=train,
            num_workers=self.hparams.num_workers,
        )


if __name__ == "__main__":
    model = MNISTModel(hidden_dim=128, lr=5e-4)
    trainer = Trainer(**TRAINER, accelerator="auto", devices="auto", enable_progress_bar=True)
    trainer.fit(model)
