"""When validation runs inside `fit`, for both runtimes: val_check_interval and loop limits.

    python val_schedule.py OUT_DIR CASE      # CASE: a key of CASES below

Records, per validation (the sanity check excluded): epoch, global step, the batch of the
epoch it followed, and whether the model was back in train mode for the next batch; the steps
at which a logger received `val_loss` and `epoch`; the hooks around each validation; when
EarlyStopping acted (`on_validation_end` or `on_train_epoch_end`); the files ModelCheckpoint
wrote (their names carry epoch and step); and the final epoch/step. 10 batches of 4 per epoch.
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, TensorDataset

CASES = {
    "quarter": dict(max_epochs=2, val_check_interval=0.25),
    "int3": dict(max_epochs=2, val_check_interval=3),
    "across_epochs": dict(max_epochs=3, val_check_interval=4, check_val_every_n_epoch=None),
    "every_2nd_epoch": dict(max_epochs=4, check_val_every_n_epoch=2),
    "fraction_0.3": dict(max_epochs=1, val_check_interval=0.3),
    "limited": dict(max_epochs=2, val_check_interval=0.5, limit_train_batches=6),
    "min_epochs": dict(max_epochs=5, min_epochs=3, stop="early_stopping"),
    "min_steps": dict(max_epochs=5, min_steps=14, stop="early_stopping"),
    "stop_mid_epoch": dict(max_epochs=3, val_check_interval=0.5, stop="at_step_7"),
    "max_epochs_0": dict(max_epochs=0),
    "unlimited_epochs": dict(max_epochs=-1, max_steps=25),
    "overfit": dict(max_epochs=2, overfit_batches=2),
}
REPORT = {"validations": [], "val_logged": [], "events": [], "train_mode_after_val": []}


class Recorder(Callback):
    def __init__(self):
        self.pending, self.last_batch = False, None

    def on_train_epoch_start(self, trainer, pl_module):
        self.last_batch = None

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            REPORT["validations"].append([trainer.current_epoch, trainer.global_step,
                                          self.last_batch])  # fmt: skip
            self.pending = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.pending:
            REPORT["train_mode_after_val"].append(pl_module.training)
            self.pending = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.last_batch = batch_idx

    def on_train_epoch_end(self, trainer, pl_module):
        REPORT["events"].append(["train_epoch_end", trainer.current_epoch, trainer.global_step])


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.should_stop = True


class Stops(EarlyStopping):
    def on_validation_end(self, trainer, pl_module):
        before = self.wait_count
        super().on_validation_end(trainer, pl_module)
        if self.wait_count != before or trainer.should_stop:
            REPORT["events"].append(["es@val_end", trainer.current_epoch, trainer.global_step])

    def on_train_epoch_end(self, trainer, pl_module):
        before = self.wait_count
        super().on_train_epoch_end(trainer, pl_module)
        if self.wait_count != before or trainer.should_stop:
            REPORT["events"].append(["es@epoch_end", trainer.current_epoch, trainer.global_step])


class Recording(Logger):
    @property
    def name(self):
        return "rec"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        if "val_loss" in metrics:
            REPORT["val_logged"].append([step, metrics.get("epoch")])


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self.net(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        assert not self.training
        # Constant, so EarlyStopping never sees an improvement after the first check.
        self.log("val_loss", torch.tensor(1.0))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(40, 4, generator=g)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4, shuffle=True)

    def val_dataloader(self):
        x = torch.ones(8, 4)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def main(out, case):
    settings = dict(CASES[case])
    stop = settings.pop("stop", None)
    ckpts = out / "ckpts"
    callbacks = [Recorder(), ModelCheckpoint(dirpath=str(ckpts), monitor="val_loss", save_top_k=-1)]
    if stop == "early_stopping":
        callbacks.append(Stops(monitor="val_loss", patience=1))
    elif stop:
        callbacks.append(StopAt(int(stop.rsplit("_", 1)[1])))
    L.seed_everything(0)
    trainer = L.Trainer(logger=Recording(), callbacks=callbacks, log_every_n_steps=1,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(out), accelerator="cpu", devices=1,
                        **settings)  # fmt: skip
    trainer.fit(Model())
    REPORT["final"] = [trainer.current_epoch, trainer.global_step, trainer.max_epochs]
    REPORT["checkpoints"] = sorted(p.name for p in ckpts.glob("*.ckpt")) if ckpts.exists() else []
    (out / "report.json").write_text(json.dumps(REPORT))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
