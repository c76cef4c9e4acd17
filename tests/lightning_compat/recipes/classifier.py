"""A small classifier written for Lightning, run unchanged (imports renamed) by both runtimes.

    python classifier.py OUT_DIR [STAGES]      # writes OUT_DIR/report.json

The report holds what Lightning documents and the two runtimes must agree on: every hook
call in order, the metric names, how often validation ran, the checkpoint's top-level keys.
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

CALLBACK_HOOKS = (
    "setup", "teardown", "on_fit_start", "on_fit_end", "on_sanity_check_start",
    "on_sanity_check_end", "on_train_start", "on_train_end", "on_train_epoch_start",
    "on_train_epoch_end", "on_train_batch_start", "on_train_batch_end",
    "on_validation_start", "on_validation_end", "on_validation_epoch_start",
    "on_validation_epoch_end", "on_validation_batch_start", "on_validation_batch_end",
    "on_test_start", "on_test_end", "on_test_epoch_start", "on_test_epoch_end",
    "on_test_batch_start", "on_test_batch_end", "on_predict_start", "on_predict_end",
    "on_predict_epoch_start", "on_predict_epoch_end", "on_predict_batch_start",
    "on_predict_batch_end", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step", "on_before_zero_grad", "on_save_checkpoint",
    "on_load_checkpoint", "on_exception",
)  # fmt: skip


class Recorder(Callback):
    """Records every callback hook call by name (the `setup`/`teardown` stage too)."""

    def __init__(self):
        self.calls = []


def _recording(name):
    def hook(self, trainer, pl_module, *args, **kwargs):
        stage = kwargs.get("stage", args[0] if name in ("setup", "teardown") and args else None)
        self.calls.append(f"{name}:{getattr(stage, 'value', stage)}" if stage else name)

    hook.__name__ = name
    return hook


for _name in CALLBACK_HOOKS:
    setattr(Recorder, _name, _recording(_name))


def dataset(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x[:, :2].sum(1) > 0).long())


class Classifier(L.LightningModule):
    def __init__(self, hidden=16, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y), prog_bar=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self):
        return DataLoader(dataset(32, 0), batch_size=8)

    def val_dataloader(self):
        return DataLoader(dataset(16, 1), batch_size=8)

    def test_dataloader(self):
        return DataLoader(dataset(16, 2), batch_size=8)


def main(out, stages):
    L.seed_everything(0)
    recorder = Recorder()
    checkpoint = ModelCheckpoint(dirpath=str(out / "ckpt"), monitor="val_loss", save_last=True)
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=1, default_root_dir=str(out),
        callbacks=[recorder, checkpoint],
    )  # fmt: skip
    model = Classifier()
    report = {}
    if "fit" in stages:
        trainer.fit(model)
        report["fit_metrics"] = sorted(trainer.callback_metrics)
        best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
        report["checkpoint_keys"] = sorted(best)
    if "test" in stages:
        report["test"] = [sorted(r) for r in trainer.test(model)]
    report["hooks"] = recorder.calls
    report["global_step"] = trainer.global_step
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) > 2 else ["fit", "test"])
