"""Prediction and "evaluate what you trained", recorded the same way under both runtimes.

    python predict.py OUT_DIR

Fits 2 epochs with Lightning's default ModelCheckpoint, then predicts: with the model and a
writer (batch_and_epoch), without a model (the best checkpoint, with Lightning's warning),
over two dataloaders, with `limit_predict_batches`, with `return_predictions=False`; then
validate/test without a model and `ckpt_path="last"` with no last file. Hooks, writer calls,
shapes and warnings go to report.json.
"""

import json
import sys
import warnings
from pathlib import Path

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from torch.utils.data import DataLoader, TensorDataset

HOOKS = ("setup", "teardown", "on_predict_start", "on_predict_end", "on_predict_epoch_start",
         "on_predict_epoch_end", "on_predict_batch_start", "on_predict_batch_end")  # fmt: skip
CALLS = []


def _recording(name, prefix):
    def hook(self, *args, **kwargs):
        if prefix == "":
            args = args[2:]  # (trainer, pl_module, ...)
        if name in ("setup", "teardown"):
            stage = kwargs.get("stage", args[0] if args else None)
            CALLS.append(f"{prefix}{name}:{getattr(stage, 'value', stage)}")
        elif "batch" in name:  # (outputs,) batch, batch_idx[, dataloader_idx]
            rest = args[2:] if name.endswith("_end") else args[1:]
            CALLS.append(f"{prefix}{name}{list(rest)}")
        else:
            CALLS.append(prefix + name)

    hook.__name__ = name
    return hook


class Recorder(Callback):
    pass


for _name in HOOKS:
    setattr(Recorder, _name, _recording(_name, ""))


class Writer(BasePredictionWriter):
    def __init__(self):
        super().__init__("batch_and_epoch")
        self.batches, self.epochs = [], []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch,
                           batch_idx, dataloader_idx):  # fmt: skip
        self.batches.append([list(prediction.shape), list(batch_indices), batch_idx,
                             dataloader_idx])  # fmt: skip

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        self.epochs.append([shapes(predictions), batch_indices])


def shapes(value):
    return list(value.shape) if isinstance(value, torch.Tensor) else [shapes(v) for v in value]


def dataset(n, seed):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 8, generator=g))


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.net(batch[0]).pow(2).mean())

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self.net(batch[0]).pow(2).mean())

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        CALLS.append(f"module.predict_step:{self.training}:{torch.is_inference_mode_enabled()}")
        return self(batch[0])

    def on_predict_model_eval(self):
        CALLS.append("module.on_predict_model_eval")
        self.eval()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(dataset(12, 0), batch_size=4)

    def val_dataloader(self):
        return DataLoader(dataset(8, 1), batch_size=4)

    def test_dataloader(self):
        return DataLoader(dataset(8, 2), batch_size=4)

    def predict_dataloader(self):
        return DataLoader(dataset(10, 3), batch_size=4)


for _name in HOOKS:
    setattr(Model, _name, _recording(_name, "module."))


def make_trainer(out, *callbacks, **kwargs):
    return L.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(out), callbacks=[Recorder(), *callbacks],
        **kwargs,
    )  # fmt: skip


def ckpt_warnings(caught):
    return [str(w.message) for w in caught if "ckpt_path" in str(w.message)]


def main(out):
    L.seed_everything(0)
    report = {}
    model, writer = Model(), Writer()
    trainer = make_trainer(out, writer)
    trainer.fit(model)
    best = trainer.checkpoint_callback.best_model_path
    report["default_checkpoint"] = Path(best).name
    report["checkpoint_files"] = sorted(p.name for p in Path(best).parent.glob("*.ckpt"))

    CALLS.append("== predict(model)")
    predictions = trainer.predict(model, dataloaders=model.predict_dataloader())
    report["shapes"] = shapes(predictions)
    report["writer"] = {"batches": writer.batches, "epochs": writer.epochs}
    report["train_mode_after"] = model.training

    CALLS.append("== predict()")
    with torch.no_grad():  # the fitted weights moved on: predict() must load the checkpoint's
        for p in model.parameters():
            p.add_(1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = trainer.predict()
    reloaded = Model()
    reloaded.load_state_dict(torch.load(best, weights_only=True)["state_dict"])
    expected = [reloaded(b[0]) for b in model.predict_dataloader()]
    report["predict_no_model_matches_best"] = all(
        torch.equal(a, e) for a, e in zip(again, expected, strict=True)
    )
    report["predict_no_model_warnings"] = ckpt_warnings(caught)

    CALLS.append("== predict(two loaders)")
    two = trainer.predict(model, [DataLoader(dataset(6, 4), batch_size=4),
                                  DataLoader(dataset(3, 5), batch_size=2)])  # fmt: skip
    report["two_loaders"] = shapes(two)
    report["writer_two"] = {"batches": writer.batches[-4:], "epoch": writer.epochs[-1]}

    CALLS.append("== limit / no return")
    limited = make_trainer(out / "limited", limit_predict_batches=2).predict(model)
    report["limited"] = len(limited)
    report["no_return"] = make_trainer(out / "none").predict(model, return_predictions=False)

    CALLS.append("== validate/test without a model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report["validate"] = [sorted(r) for r in trainer.validate()]
        report["test_last"] = [sorted(r) for r in trainer.test(ckpt_path="last")]
    report["eval_warnings"] = ckpt_warnings(caught)
    report["hooks"] = CALLS
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
