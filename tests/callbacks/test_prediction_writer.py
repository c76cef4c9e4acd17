"""`BasePredictionWriter`: Lightning's documented use, files written per batch and per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module, Trainer
from launcher.callbacks import BasePredictionWriter
from launcher.errors import UserError


class Model(Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 2)

    def forward(self, batch: Any) -> torch.Tensor:
        return self.net(batch[0])

    def predict_dataloader(self) -> DataLoader:
        x = torch.randn(7, 4, generator=torch.Generator().manual_seed(1))
        return DataLoader(TensorDataset(x), batch_size=3)


class FileWriter(BasePredictionWriter):
    """The example of Lightning's docs: a file per batch, or one per epoch (per rank)."""

    def __init__(self, output_dir: Path, write_interval: Any) -> None:
        super().__init__(write_interval)
        self.output_dir = output_dir

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:  # fmt: skip
        path = self.output_dir / str(dataloader_idx) / f"{batch_idx}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"prediction": prediction, "indices": list(batch_indices)}, path)

    def write_on_epoch_end(self, trainer: Any, pl_module: Any, predictions: Any,
                           batch_indices: Any) -> None:  # fmt: skip
        rank = trainer.global_rank
        torch.save(predictions, self.output_dir / f"predictions_{rank}.pt")
        torch.save(batch_indices, self.output_dir / f"batch_indices_{rank}.pt")


def trainer(tmp_path: Path, *callbacks: Any) -> Trainer:
    return Trainer(logger=False, enable_progress_bar=False, callbacks=list(callbacks),
                   run_dir=str(tmp_path / "run"))  # fmt: skip


def expected() -> list[torch.Tensor]:
    model = Model()
    with torch.no_grad():
        return [model(b) for b in model.predict_dataloader()]


def test_a_writer_writes_each_batch_with_its_indices(tmp_path: Path) -> None:
    out = tmp_path / "preds"
    returned = trainer(tmp_path, FileWriter(out, "batch")).predict(
        Model(), return_predictions=False
    )
    assert returned is None
    files = sorted((out / "0").iterdir())
    assert [f.name for f in files] == ["0.pt", "1.pt", "2.pt"]
    assert not (out / "predictions_0.pt").exists()
    for i, want in enumerate(expected()):
        saved = torch.load(out / "0" / f"{i}.pt")
        assert torch.equal(saved["prediction"], want)
        assert saved["indices"] == list(range(3 * i, min(3 * i + 3, 7)))


def test_a_writer_writes_the_epoch_even_without_returned_predictions(tmp_path: Path) -> None:
    out = tmp_path / "preds"
    out.mkdir()
    trainer(tmp_path, FileWriter(out, "epoch")).predict(Model(), return_predictions=False)
    assert not (out / "0").exists()  # nothing per batch
    predictions = torch.load(out / "predictions_0.pt")
    for got, want in zip(predictions, expected(), strict=True):
        assert torch.equal(got, want)
    assert torch.load(out / "batch_indices_0.pt") == [[[0, 1, 2], [3, 4, 5], [6]]]


def test_batch_and_epoch_writes_both(tmp_path: Path) -> None:
    out = tmp_path / "preds"
    out.mkdir()
    preds = trainer(tmp_path, FileWriter(out, "batch_and_epoch")).predict(Model())
    assert preds is not None and len(preds) == 3
    assert len(list((out / "0").iterdir())) == 3 and (out / "predictions_0.pt").is_file()


def test_indices_follow_the_samplers_order_and_are_missing_without_one(tmp_path: Path) -> None:
    class Reversed(torch.utils.data.Sampler[int]):
        def __iter__(self) -> Any:
            return iter(range(6, -1, -1))

        def __len__(self) -> int:
            return 7

    class Writer(BasePredictionWriter):
        def __init__(self) -> None:
            super().__init__("batch")
            self.indices: list[Any] = []

        def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any,
                               batch_indices: Any, *rest: Any) -> None:  # fmt: skip
            self.indices.append(list(batch_indices))

    loader = Model().predict_dataloader()
    reversed_loader = DataLoader(loader.dataset, batch_size=3, sampler=Reversed())
    writer = Writer()
    trainer(tmp_path, writer).predict(Model(), reversed_loader)
    assert writer.indices == [[6, 5, 4], [3, 2, 1], [0]]

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self) -> Any:
            return iter([(torch.zeros(4),)] * 2)

    plain = Writer()
    with pytest.warns(UserWarning, match="Couldn't infer the batch indices"):
        trainer(tmp_path / "b", plain).predict(Model(), DataLoader(Stream(), batch_size=1))
    assert plain.indices == [[], []]


def test_an_unknown_write_interval_is_an_error() -> None:
    with pytest.raises(UserError, match="`write_interval` should be one of"):
        BasePredictionWriter("step")  # type: ignore[arg-type]
