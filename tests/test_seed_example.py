"""The seed's Lightning example runs on this package with only its imports changed.

    python -m pytest tests/test_seed_example.py -q

`tests/recipes/seed_mnist.py` is `../shared/seed/mnist_example.py` (kept verbatim as
`tests/golden/seed_mnist_example.py.txt`) with the Lightning imports
swapped for `launcher` ones and `pl.metrics.Accuracy()` for torchmetrics'. The tests write
tiny MNIST files in torchvision's raw format into a temporary directory, change into it (the
example reads "./data" and writes "./checkpoints/"), and run the file's `__main__` block with
a few Trainer arguments overridden, so the example itself stays exactly as the seed wrote it.
"""

from __future__ import annotations

import difflib
import runpy
from pathlib import Path

import pytest
import torchvision.datasets.mnist

from launcher.train.trainer import Trainer
from tests.mnist_files import write_fake_mnist

EXAMPLE = Path(__file__).parent / "recipes" / "seed_mnist.py"
# The seed as the user gave it, kept verbatim so the comparison runs in any checkout; the
# original sits next to the development checkout (../shared/seed/).
SEED_COPY = Path(__file__).parent / "golden" / "seed_mnist_example.py.txt"
SEED_ORIGINAL = Path(__file__).resolve().parents[2] / "shared" / "seed" / "mnist_example.py"


def run_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides) -> dict:
    """Run the example's `__main__` block in `tmp_path`, offline, with Trainer `overrides`."""
    write_fake_mnist(str(tmp_path / "data"), n_train=64, n_test=32)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    def no_network(*args, **kwargs):
        raise AssertionError("the example tried to download MNIST")

    # download=True must find the files and never reach for the network.
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", no_network)
    original_init = Trainer.__init__

    def init_with_overrides(self, *args, **kwargs):
        original_init(self, *args, **{**kwargs, **overrides})

    monkeypatch.setattr(Trainer, "__init__", init_with_overrides)
    return runpy.run_path(str(EXAMPLE), run_name="__main__")


def test_the_kept_seed_is_the_original():
    if SEED_ORIGINAL.exists():  # next to the development checkout; a CI clone has only the copy
        assert SEED_COPY.read_text() == SEED_ORIGINAL.read_text()
    assert "pl.metrics.Accuracy()" in SEED_COPY.read_text()  # the seed's own metric, unported


def test_only_the_imports_differ_from_the_seed():
    seed, ours = SEED_COPY.read_text().splitlines(), EXAMPLE.read_text().splitlines()
    changed = [line[1:].strip() for line in difflib.unified_diff(seed, ours, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]  # fmt: skip
    for line in filter(None, changed):  # blank lines: ruff's import grouping
        assert line.startswith(("import ", "from ")) or "Accuracy(" in line, line


def test_seed_example_runs_with_fast_dev_run(tmp_path, monkeypatch):
    namespace = run_example(tmp_path, monkeypatch, fast_dev_run=True)
    trainer, model = namespace["trainer"], namespace["model"]
    assert trainer.fast_dev_run == 1 and trainer.global_step == 1 and trainer.current_epoch == 1
    assert trainer.train_loader.num_workers == 4  # the example's workers really ran
    assert model.hparams == {"hidden_dim": 128, "lr": 5e-4}
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(trainer.callback_metrics)
    assert 0.0 <= float(trainer.callback_metrics["val_acc"]) <= 1.0
    # fast_dev_run: no checkpoints, no logger output.
    assert not (tmp_path / "checkpoints").exists()
    assert not (tmp_path / "mlflow.db").exists()
    assert [p for p in tmp_path.rglob("*.ckpt")] == []


def test_seed_example_trains_and_keeps_its_best_checkpoint(tmp_path, monkeypatch):
    # The example as written (ModelCheckpoint, EarlyStopping, MLflow), only shorter.
    namespace = run_example(tmp_path, monkeypatch, max_epochs=2)
    trainer = namespace["trainer"]
    assert trainer.current_epoch == 2 and trainer.global_step == 2 * 2  # 64 images / 32
    best = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    val_acc = namespace["checkpoint_callback"].best_model_score
    assert len(best) == 1 and best[0].startswith("mnist-best-epoch=")
    assert best[0].endswith(f"-val_acc={val_acc:.2f}.ckpt")
    # logger=True: the MLflow run holds the hyperparameters and per-epoch validation metrics.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("seed_mnist").experiment_id])
    assert run.data.params["hidden_dim"] == "128" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val_acc")
    assert [m.step for m in history] == [1, 3]  # Lightning's: the steps before each
    assert history[-1].value == pytest.approx(float(trainer.callback_metrics["val_acc"]))
