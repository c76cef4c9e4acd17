"""Every Callback and LightningModule hook recorded into one list, for both runtimes.

    python module_hooks.py OUT_DIR [STAGES]     # STAGES: fit,validate,test,resume

The module overrides its hooks too (prefixed `module.` in the record), so the report shows
how callback and module hooks interleave. `accumulate_grad_batches=2` over 3 batches shows
which hooks run on stepping batches; `num_sanity_val_steps` keeps Lightning's default (2).
`resume` fits one epoch, then a new Trainer continues to two epochs from `ckpt_path`.
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
    "on_test_batch_start", "on_test_batch_end", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step", "on_before_zero_grad",
)  # fmt: skip
MODULE_HOOKS = CALLBACK_HOOKS[2:4] + CALLBACK_HOOKS[6:] + (
    "on_validation_model_eval", "on_validation_model_train", "on_test_model_eval",
    "on_test_model_train", "on_before_batch_transfer", "on_after_batch_transfer",
)  # fmt: skip
CALLS = []


def _recording(name, prefix, returns_batch):
    def hook(self, *args, **kwargs):
        if prefix == "":
            args = args[2:]  # (trainer, pl_module, ...)
        if name in ("setup", "teardown"):
            stage = kwargs.get("stage", args[0] if args else None)
            CALLS.append(f"{prefix}{name}:{getattr(stage, 'value', stage)}")
        else:
            CALLS.append(prefix + name)
        if returns_batch:
            return args[0]

    hook.__name__ = name
    return hook


class Recorder(Callback):
    pass


for _name in CALLBACK_HOOKS:
    setattr(Recorder, _name, _recording(_name, "", False))


def dataset(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x[:, :2].sum(1) > 0).long())


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(8, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", F.cross_entropy(self.net(x), y))

    def setup(self, stage):
        CALLS.append(f"module.setup:{getattr(stage, 'value', stage)}")

    def teardown(self, stage):
        CALLS.append(f"module.teardown:{getattr(stage, 'value', stage)}")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(dataset(24, 0), batch_size=8)

    def val_dataloader(self):
        return DataLoader(dataset(24, 1), batch_size=8)

    def test_dataloader(self):
        return DataLoader(dataset(16, 2), batch_size=8)


for _name in MODULE_HOOKS:
    setattr(Model, _name, _recording(_name, "module.", _name.endswith("batch_transfer")))


def trainer(out, max_epochs, *callbacks):
    return L.Trainer(
        max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False,
        enable_progress_bar=False, enable_model_summary=False, accumulate_grad_batches=2,
        default_root_dir=str(out), callbacks=[Recorder(), *callbacks],
    )  # fmt: skip


def main(out, stages):
    L.seed_everything(0)
    report = {}
    model = Model()
    for stage in stages:
        CALLS.append(f"== {stage}")
        if stage == "fit":
            t = trainer(out, 1)
            t.fit(model)
            report["fit_metrics"] = sorted(t.callback_metrics)
        elif stage == "validate":
            report["validate"] = [sorted(r) for r in trainer(out, 1).validate(model)]
        elif stage == "test":
            report["test"] = [sorted(r) for r in trainer(out, 1).test(model)]
        elif stage == "resume":
            checkpoint = ModelCheckpoint(dirpath=str(out / "ckpt"), save_last=True)
            trainer(out / "first", 1, checkpoint).fit(model)
            CALLS.append("== resumed")
            again = ModelCheckpoint(dirpath=str(out / "ckpt"), save_last=True)
            trainer(out / "second", 2, again).fit(Model(), ckpt_path=checkpoint.last_model_path)
    report["hooks"] = CALLS
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) > 2 else ["fit", "test"])
