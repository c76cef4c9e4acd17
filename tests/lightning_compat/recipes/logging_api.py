"""`self.log` / `log_dict` options, epoch-end logging, torchmetrics objects and the Trainer's
calls into its loggers, recorded for both runtimes.

    python logging_api.py OUT_DIR

The model logs with Lightning's positional order of `log`'s options, logs torchmetrics
`Metric` / `MetricCollection` objects, and logs in `on_train_epoch_end` and
`on_validation_epoch_end`; a `ModelCheckpoint(dirpath=None)` monitors the value logged in
`on_train_epoch_end`. A recording logger shows which logger methods the Trainer calls, when.
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
import torchmetrics
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from torch.utils.data import DataLoader, TensorDataset

CALLS = []


class RecordingLogger(Logger):
    def __init__(self, save_dir):
        super().__init__()
        self._save_dir = save_dir

    @property
    def name(self):
        return "rec"

    @property
    def version(self):
        return "v0"

    @property
    def save_dir(self):
        return self._save_dir

    def log_hyperparams(self, params, *args, **kwargs):
        CALLS.append("log_hyperparams")

    def log_metrics(self, metrics, step=None):
        CALLS.append(f"log_metrics:{step}:{','.join(sorted(metrics))}")

    def save(self):
        CALLS.append("save")

    def finalize(self, status):
        CALLS.append(f"finalize:{status}")

    def after_save_checkpoint(self, checkpoint_callback):
        CALLS.append(f"after_save_checkpoint:{Path(checkpoint_callback.best_model_path).name}")


def dataset(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x[:, :2].sum(1) > 0).long())


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(8, 2)
        self.train_acc = torchmetrics.classification.MulticlassAccuracy(num_classes=2)
        self.val_metrics = torchmetrics.MetricCollection(
            {
                "val_acc": torchmetrics.classification.MulticlassAccuracy(num_classes=2),
                "val_f1": torchmetrics.classification.MulticlassF1Score(num_classes=2),
            }
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        # Lightning's positional order: prog_bar, logger, on_step, on_epoch, reduce_fx.
        self.log("loss_max", loss, False, True, False, True, "max")
        self.log(
            "loss",
            loss,
            prog_bar=True,
            enable_graph=False,
            rank_zero_only=False,
            add_dataloader_idx=True,
            sync_dist_group=None,
        )
        self.train_acc(logits.argmax(1), y)
        self.log(
            "train_acc", self.train_acc, on_step=False, on_epoch=True, metric_attribute="train_acc"
        )
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.val_metrics.update(logits.argmax(1), y)
        self.log_dict(self.val_metrics)
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=len(y))

    def on_train_epoch_end(self):
        self.log("epoch_end_value", float(10 - self.current_epoch))

    def on_validation_epoch_end(self):
        self.log("val_end_value", float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(dataset(24, 0), batch_size=8)

    def val_dataloader(self):
        return DataLoader(dataset(24, 1), batch_size=8)


def rounded(metrics):
    return {k: round(float(v), 5) for k, v in sorted(metrics.items())}


class Seen(Callback):
    """What a plain callback and the checkpoint see of the metrics at each epoch end."""

    def __init__(self):
        self.seen = []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.seen.append(["validation_end", rounded(trainer.callback_metrics)])

    def on_train_epoch_end(self, trainer, pl_module):
        self.seen.append(["train_epoch_end", rounded(trainer.callback_metrics)])


def main(out):
    L.seed_everything(0)
    checkpoint = ModelCheckpoint(monitor="epoch_end_value", mode="min", save_last=True)
    seen = Seen()
    csv = CSVLogger(str(out / "logs"), name="csv")
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=[RecordingLogger(str(out / "rec")), csv],
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
        default_root_dir=str(out), callbacks=[seen, checkpoint], num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(Model())
    report = {
        "calls": CALLS,
        "seen": seen.seen,
        "callback_metrics": rounded(trainer.callback_metrics),
        "log_dir": str(Path(trainer.log_dir).relative_to(out)),
        "ckpt_dir": str(Path(checkpoint.dirpath).relative_to(out)),
        "best": Path(checkpoint.best_model_path).name,
        "best_score": round(float(checkpoint.best_model_score), 5),
        "csv": (Path(csv.log_dir) / "metrics.csv").read_text().splitlines(),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
