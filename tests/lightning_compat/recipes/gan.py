"""Lightning's basic GAN (the "manual optimization" docs page), shrunk, with its hooks recorded.

    python gan.py OUT_DIR            # one process; OUT_DIR/report.json

Two optimizers stepped by hand in `training_step` (`self.optimizers()`, `manual_backward`,
`toggle_optimizer`, `clip_gradients`), two schedulers the Trainer must leave alone (one is
stepped by hand through `self.lr_schedulers()`), and a callback that records every
gradient-related hook, the global step after each batch and the steps the logger saw.
"""

import csv
import json
import sys
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def _opt(self, trainer, optimizer):
        return next(i for i, o in enumerate(trainer.optimizers) if o is optimizer)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.events.append(f"batch_start {batch_idx}")

    def on_before_backward(self, trainer, module, loss):
        self.events.append("before_backward")

    def on_after_backward(self, trainer, module):
        self.events.append("after_backward")

    def on_before_zero_grad(self, trainer, module, optimizer):
        self.events.append(f"before_zero_grad {self._opt(trainer, optimizer)}")

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.events.append(f"before_optimizer_step {self._opt(trainer, optimizer)}")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
        self.events.append(f"batch_end {batch_idx} step={trainer.global_step} out={keys}")

    def on_train_epoch_end(self, trainer, module):
        lrs = [opt.param_groups[0]["lr"] for opt in trainer.optimizers]
        self.events.append(f"epoch_end {trainer.current_epoch} lrs={lrs}")


class GAN(L.LightningModule):
    def __init__(self, latent: int = 4, lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.G = torch.nn.Sequential(torch.nn.Linear(latent, 8), torch.nn.ReLU(),
                                     torch.nn.Linear(8, 2))  # fmt: skip
        self.D = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(),
                                     torch.nn.Linear(8, 1))  # fmt: skip
        self.losses = []

    def training_step(self, batch):  # no batch_idx: Lightning reads the signature
        (x,) = batch
        g_opt, d_opt = self.optimizers()
        n = x.shape[0]
        fake = self.G(torch.randn(n, self.hparams.latent, device=self.device))
        real_label, fake_label = torch.ones(n, 1), torch.zeros(n, 1)

        # discriminator
        self.toggle_optimizer(d_opt)
        err_real = F.binary_cross_entropy_with_logits(self.D(x), real_label)
        err_d = err_real + F.binary_cross_entropy_with_logits(self.D(fake.detach()), fake_label)
        d_opt.zero_grad()
        self.manual_backward(err_d)
        self.clip_gradients(d_opt, gradient_clip_val=0.5, gradient_clip_algorithm="norm")
        d_opt.step()
        self.untoggle_optimizer(d_opt)

        # generator
        self.toggle_optimizer(g_opt)
        err_g = F.binary_cross_entropy_with_logits(self.D(fake), real_label)
        g_opt.zero_grad()
        self.manual_backward(err_g)
        g_opt.step()
        self.untoggle_optimizer(g_opt)

        self.log_dict({"g_loss": err_g, "d_loss": err_d}, prog_bar=True)
        self.losses.append((err_g.item(), err_d.item()))
        return {"loss": err_g, "d_loss": err_d.detach()}

    def on_train_epoch_end(self):
        first, _second = self.lr_schedulers()
        first.step()  # by hand: the Trainer steps no scheduler under manual optimization

    def configure_optimizers(self):
        g_opt = torch.optim.Adam(self.G.parameters(), lr=self.hparams.lr)
        d_opt = torch.optim.Adam(self.D.parameters(), lr=self.hparams.lr)
        g_sched = torch.optim.lr_scheduler.StepLR(g_opt, step_size=1, gamma=0.5)
        d_sched = {"scheduler": torch.optim.lr_scheduler.StepLR(d_opt, step_size=1, gamma=0.5),
                   "interval": "step"}  # fmt: skip
        return [g_opt, d_opt], [g_sched, d_sched]

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        real = torch.randn(48, 2, generator=g) * 0.5 + torch.tensor([2.0, -1.0])
        return DataLoader(TensorDataset(real), batch_size=8)


def main(out: Path) -> None:
    torch.manual_seed(0)
    recorder = Recorder()
    model = GAN()
    trainer = L.Trainer(max_epochs=2, logger=CSVLogger(out, name="csv"), callbacks=[recorder],
                        log_every_n_steps=2, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False,
                        accelerator="cpu", devices=1)  # fmt: skip
    trainer.fit(model)
    with open(next(out.glob("csv/*/metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    logged = [(int(r["step"]), sorted(k for k, v in r.items() if v and k != "step")) for r in rows]
    report = {
        "events": recorder.events,
        "global_step": trainer.global_step,
        "logged": logged,
        "lrs": [opt.param_groups[0]["lr"] for opt in trainer.optimizers],
        "losses": model.losses,
        "callback_metrics": sorted(trainer.callback_metrics),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
