"""A model written for Lightning that saves a checkpoint, and loads one (either runtime's).

    python checkpoints.py OUT_DIR                 # train; OUT_DIR/report.json, OUT_DIR/ckpts/
    python checkpoints.py OUT_DIR load CKPT       # Regressor.load_from_checkpoint(CKPT)

The report holds the checkpoint's top-level keys, its hyperparameters, and the model's outputs
on a fixed input, so each runtime's load of the other's file can be compared.
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset


class Regressor(L.LightningModule):
    def __init__(self, hidden: int = 8, lr: float = 0.05, note: str = "x"):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, 1))  # fmt: skip

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(32, 4, generator=g)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


PROBE = torch.linspace(-1, 1, 12).reshape(3, 4)


def outputs(model):
    model.eval()
    with torch.no_grad():
        return model(PROBE.to(model.device)).flatten().tolist()


def main(out: Path, args: list[str]) -> None:
    report = {}
    if args and args[0] == "load":
        model = Regressor.load_from_checkpoint(args[1], map_location="cpu")
        report.update(training=model.training, hparams=dict(model.hparams))
        report.update(outputs=outputs(model))
    else:
        torch.manual_seed(0)
        model = Regressor(hidden=6, note="saved")
        ckpt = ModelCheckpoint(dirpath=str(out / "ckpts"), save_last=True)
        trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False,
                            callbacks=[ckpt], accelerator="cpu",
                            default_root_dir=str(out))  # fmt: skip
        trainer.fit(model)
        path = out / "ckpts" / "last.ckpt"
        saved = torch.load(path, weights_only=True)
        report.update(keys=sorted(saved), checkpoint=str(path), outputs=outputs(model),
                      hparams=dict(saved["hyper_parameters"]))  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
