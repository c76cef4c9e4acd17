"""CIFAR-10 ResNet-18: torchvision's ResNet-18 with a CIFAR stem, trained in bf16 on GPUs.

    python recipes/cifar_resnet.py                                  # plain Lightning-style run
    launch recipes/cifar_resnet.py --gpus 1 --set data_dir=/datasets
    launch recipes/cifar_resnet.py --nodes 2 --gpus 8 --backend slurm --set data_dir=/shared/data
    launch recipes/cifar_resnet.py --gpus 1 --max-epochs 1 --set fake_data=true   # no dataset

Nothing is downloaded: extract `cifar-10-python.tar.gz` (https://www.cs.toronto.edu/~kriz/)
into `<data_dir>` so that `<data_dir>/cifar-10-batches-py/data_batch_1` exists.
`fake_data=true` trains on `torchvision.datasets.FakeData` images instead (random labels:
for throughput checks and tests, not for accuracy).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy

from launcher import DataModule, Module, Trainer
from launcher.callbacks import LearningRateMonitor, ModelCheckpoint
from launcher.errors import UserError

TRAINER = dict(max_epochs=30, precision="bf16-mixed")

CIFAR_FILES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "batches.meta",
)
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cifar10(data_dir: str, train: bool, transform):
    """torchvision's CIFAR10 from `<data_dir>/cifar-10-batches-py`, or a UserError saying how."""
    from torchvision.datasets import CIFAR10

    root = Path(data_dir).expanduser().resolve()
    folder = root / "cifar-10-batches-py"
    missing = [name for name in CIFAR_FILES if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"CIFAR-10 files missing in {folder}: {', '.join(missing)}. This recipe never "
            "downloads (compute nodes are often offline): download cifar-10-python.tar.gz from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html and run `tar xzf cifar-10-python.tar.gz "
            f"-C {root}`, or point --set data_dir=DIR at a directory holding "
            "cifar-10-batches-py/. For a run without the dataset use --set fake_data=true."
        )
    try:
        return CIFAR10(str(root), train=train, download=False, transform=transform)
    except RuntimeError as exc:  # torchvision's md5 check failed
        raise UserError(
            f"CIFAR-10 files in {folder} are corrupted ({exc}); extract them again"
        ) from exc


class CIFAR10DataModule(DataModule):
    """CIFAR-10 with the usual crop+flip augmentation, or FakeData when `fake_data`."""

    def __init__(
        self,
        data_dir: str = "./data",
        batch_size: int = 256,
        num_workers: int = 8,
        fake_data: bool = False,
        fake_size: int = 1024,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.train_set = self.val_set = None

    def setup(self, stage: str) -> None:
        from torchvision import transforms as T
        from torchvision.datasets import FakeData

        hp = self.hparams
        if hp.fake_data:
            fake = dict(image_size=(3, 32, 32), num_classes=10, transform=T.ToTensor())
            self.train_set = FakeData(hp.fake_size, random_offset=0, **fake)
            self.val_set = FakeData(max(hp.fake_size // 4, 1), random_offset=hp.fake_size, **fake)
            return
        normalize = T.Normalize(MEAN, STD)
        augment = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]
        self.train_set = cifar10(hp.data_dir, True, T.Compose([*augment, T.ToTensor(), normalize]))
        self.val_set = cifar10(hp.data_dir, False, T.Compose([T.ToTensor(), normalize]))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()  # CIFAR-10's test split doubles as validation

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            drop_last=shuffle,  # equal-sized steps keep bf16/DDP timings steady
        )


def resnet18_cifar(num_classes: int = 10) -> nn.Module:
    """ResNet-18 with the CIFAR stem: 3x3 stride-1 conv1 and no max-pool (32x32 inputs)."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


class CIFARResNet(Module):
    """SGD + Nesterov momentum with a cosine schedule over `max_epochs`."""

    def __init__(
        self,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = resnet18_cifar(num_classes=10)
        self.train_acc = MulticlassAccuracy(num_classes=10, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=10, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=10, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        self.log("train_loss", loss, prog_bar=True)
        self.train_acc(logits, y)
        self.log("train_acc", self.train_acc, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True, sync_dist=True)
        self.val_acc(logits, y)
        self.log("val_acc", self.val_acc, prog_bar=True, on_step=False, on_epoch=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("test_loss", F.cross_entropy(logits, y), sync_dist=True)
        self.test_acc(logits, y)
        self.log("test_acc", self.test_acc, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        hp = self.hparams
        # No weight decay on BatchNorm weights and biases (standard for ResNets).
        decay = [p for p in self.parameters() if p.ndim > 1]
        no_decay = [p for p in self.parameters() if p.ndim <= 1]
        optimizer = torch.optim.SGD(
            [
                {"params": decay, "weight_decay": hp.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=hp.lr,
            momentum=hp.momentum,
            nesterov=True,
        )
        # One cosine over the whole run; an unbounded run (max_epochs None/-1) assumes 30.
        epochs = self.trainer.max_epochs
        epochs = epochs if epochs and epochs > 0 else 30
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def configure_callbacks(self):
        return [
            ModelCheckpoint(
                monitor="val_acc", mode="max", filename="cifar-{epoch:02d}-{val_acc:.3f}"
            ),
            LearningRateMonitor(logging_interval="epoch"),
        ]


if __name__ == "__main__":
    trainer = Trainer(**TRAINER)
    trainer.fit(CIFARResNet(), datamodule=CIFAR10DataModule())
