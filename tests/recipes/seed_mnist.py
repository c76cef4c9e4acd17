# The seed document's example (section 3, steps 1-3, and section 4), re-indented.
# It is written against PyTorch Lightning; the project's API should run it with only
# the imports changed. Note `pl.metrics.Accuracy` is the old Lightning name of what is
# now torchmetrics' Accuracy.
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchmetrics
from torch.utils.data import DataLoader
from torchvision.datasets import MNIST
from torchvision.transforms import ToTensor

import launcher as pl
from launcher import Trainer
from launcher.callbacks import EarlyStopping, ModelCheckpoint


class MNISTModel(pl.LightningModule):
    def __init__(self, hidden_dim=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()  # same as self.hparams = {"hidden_dim": 64, "lr": 1e-3}
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(28 * 28, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 10)
        )
        self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)

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

    def train_dataloader(self):
        return DataLoader(MNIST("./data", train=True, download=True, transform=ToTensor()),
                          batch_size=32, shuffle=True, num_workers=4)

    def val_dataloader(self):
        return DataLoader(MNIST("./data", train=False, download=True, transform=ToTensor()),
                          batch_size=32, num_workers=4)


if __name__ == "__main__":
    model = MNISTModel(hidden_dim=128, lr=5e-4)
    checkpoint_callback = ModelCheckpoint(monitor="val_acc", mode="max", save_top_k=1,
                                          dirpath="./checkpoints/",
                                          filename="mnist-best-{epoch:02d}-{val_acc:.2f}")
    early_stop_callback = EarlyStopping(monitor="val_loss", mode="min", patience=3)
    trainer = Trainer(max_epochs=5, accelerator="auto", devices="auto", logger=True,
                      enable_progress_bar=True,
                      callbacks=[checkpoint_callback, early_stop_callback])
    trainer.fit(model)

# Other Trainer settings the seed shows:
#   Trainer(max_epochs=10, accelerator="gpu", devices=2, strategy="ddp_find_unused_parameters_false")
#   Trainer(precision=16)  / precision="bf16" / precision=8 (fp8 on H100)
#   Trainer(precision=16, accelerator="gpu", devices=2, strategy="ddp")
#   Trainer(precision=16, accumulate_grad_batches=4)
#   Trainer(fast_dev_run=True)
#   trainer.fit(model, datamodule=MNISTDataModule())   # a LightningDataModule
#   if self.trainer.is_global_zero: print(...)
#   loggers: TensorBoard (Lightning's default), WandbLogger(project=..., name=...), MLflow
