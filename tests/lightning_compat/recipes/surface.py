"""The rest of the surface recipes touch, recorded for both runtimes.

    python surface.py OUT_DIR

configure_model's place among the hooks, estimated_stepping_batches, is_last_batch,
GradientAccumulationScheduler's steps per epoch, LambdaCallback, BaseFinetuning's param groups,
all_gather on one process, freeze/unfreeze, Timer's stages, bf16-true's dtypes and SWA's schedule and averaged weights.
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import (
    BaseFinetuning,
    Callback,
    GradientAccumulationScheduler,
    LambdaCallback,
    StochasticWeightAveraging,
    Timer,
)
from torch.utils.data import DataLoader, TensorDataset

REPORT = {
    "swa_lrs": [],
    "order": [],
    "last": [],
    "steps": [],
    "lambda": [],
    "groups": [],
    "dtypes": {},
}
QUIET = dict(logger=False, enable_progress_bar=False, enable_checkpointing=False,
             enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip


def data(n):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g))


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = torch.nn.Linear(4, 4)
        self.head = None

    def setup(self, stage):
        REPORT["order"].append(f"setup:{getattr(stage, 'value', stage)}")

    def configure_model(self):
        REPORT["order"].append("configure_model")
        if self.head is None:
            self.head = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        REPORT["last"].append([self.current_epoch, batch_idx, self.trainer.is_last_batch])
        x, y = batch
        made = torch.zeros(1)
        REPORT["dtypes"].update(param=str(self.head.weight.dtype), input=str(x.dtype),
                                created=str(made.dtype))  # fmt: skip
        return F.mse_loss(self(x).float(), y.float())

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x).float(), y.float()))

    def configure_optimizers(self):
        REPORT["order"].append("configure_optimizers")
        REPORT["estimated"] = self.trainer.estimated_stepping_batches
        return torch.optim.SGD(filter(lambda p: p.requires_grad, self.parameters()), lr=0.1)

    def on_train_start(self):
        REPORT["gather"] = list(self.all_gather(torch.ones(3)).shape)
        REPORT["gather_scalar"] = list(self.all_gather(torch.tensor(1.0)).shape)

    def train_dataloader(self):
        return DataLoader(data(40), batch_size=8)  # 5 batches

    def val_dataloader(self):
        return DataLoader(data(16), batch_size=8)


class Plain(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(data(40), batch_size=8)

    def on_train_epoch_end(self):
        REPORT["swa_lrs"].append(round(self.trainer.optimizers[0].param_groups[0]["lr"], 6))


class Steps(Callback):
    def on_train_epoch_start(self, trainer, module):
        self.start = trainer.global_step

    def on_train_epoch_end(self, trainer, module):
        REPORT["steps"].append([trainer.current_epoch, trainer.accumulate_grad_batches,
                                trainer.global_step - self.start])  # fmt: skip


class Unfreeze(BaseFinetuning):
    def freeze_before_training(self, pl_module):
        self.freeze(pl_module.backbone)

    def finetune_function(self, pl_module, epoch, optimizer):
        if epoch == 1:
            self.unfreeze_and_add_param_group(pl_module.backbone, optimizer, initial_denom_lr=4.0)

    def on_train_epoch_end(self, trainer, pl_module):
        opt = trainer.optimizers[0]
        REPORT["groups"].append([len(opt.param_groups), [g["lr"] for g in opt.param_groups],
                                 pl_module.backbone.weight.requires_grad])  # fmt: skip


def main(out):
    lam = LambdaCallback(
        on_train_epoch_start=lambda t, m: REPORT["lambda"].append(f"epoch_start:{t.current_epoch}"),
        on_validation_epoch_end=lambda t, m: REPORT["lambda"].append(f"val_end:{t.current_epoch}"),
    )
    timer = Timer()
    model = Model()
    trainer = L.Trainer(max_epochs=3, default_root_dir=out, **QUIET, callbacks=[
        GradientAccumulationScheduler(scheduling={1: 2}), Steps(), lam, Unfreeze(), timer,
    ])  # fmt: skip
    trainer.fit(model)
    trainer.validate(model)
    REPORT["timer_stages"] = sorted(timer.state_dict()["time_elapsed"])
    REPORT["timer_validate_measured"] = timer.time_elapsed("validate") > 0
    model.freeze()
    REPORT["frozen"] = [model.training, any(p.requires_grad for p in model.parameters())]
    model.unfreeze()
    REPORT["unfrozen"] = [model.training, all(p.requires_grad for p in model.parameters())]
    half = L.Trainer(max_steps=1, precision="bf16-true", default_root_dir=out, **QUIET)
    half.fit(Model())
    plain = Plain()
    swa = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2, annealing_epochs=2)
    L.Trainer(max_epochs=4, callbacks=[swa], default_root_dir=out, **QUIET).fit(plain)
    REPORT["swa_weights"] = [round(w, 5) for w in plain.net.weight.flatten().tolist()]
    (Path(out) / "report.json").write_text(json.dumps(REPORT))


if __name__ == "__main__":
    main(sys.argv[1])
