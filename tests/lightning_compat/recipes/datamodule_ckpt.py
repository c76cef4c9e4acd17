"""A DataModule's hyperparameters and state in the checkpoint, for both runtimes.

    python datamodule_ckpt.py OUT_DIR

The DataModule saves one dict argument whole (`save_hyperparameters(config)`) and keeps a
state (`state_dict`); the report lists the checkpoint's datamodule keys and what
`DataModule.load_from_checkpoint` rebuilds from it.
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class Data(L.LightningDataModule):
    def __init__(self, config):
        super().__init__()
        self.save_hyperparameters(config)
        self.served = 0

    def train_dataloader(self):
        self.served += 1
        g = torch.Generator().manual_seed(0)
        x = torch.randn(16, 4, generator=g)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)),
                          batch_size=self.hparams.batch_size)  # fmt: skip

    def state_dict(self):
        return {"served": self.served}

    def load_state_dict(self, state_dict):
        self.served = state_dict["served"]


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def main(out):
    L.seed_everything(0)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=str(out))  # fmt: skip
    trainer.fit(Model(), datamodule=Data({"batch_size": 8, "root": "/data"}))
    path = out / "dm.ckpt"
    trainer.save_checkpoint(str(path))
    saved = torch.load(path, weights_only=False)
    loaded = Data.load_from_checkpoint(path)
    report = {
        "keys": sorted(k for k in saved if "datamodule" in k or k == "Data"),
        "hparams_name": saved.get("datamodule_hparams_name"),
        "hparams": dict(saved.get("datamodule_hyper_parameters", {})),
        "state": saved.get("Data"),
        "loaded_hparams": dict(loaded.hparams),
        "loaded_served": loaded.served,
        "checkpoint": str(path),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
