"""The example recipes, end to end through the `launch` console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.resume_harness import launch_cli  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_digits_quickstart_reaches_95_percent_and_is_tracked_in_mlflow(tmp_path: Path) -> None:
    result = launch_cli(tmp_path, str(REPO / "recipes" / "digits.py"), "--max-epochs", "10",
                     "--name", "quickstart")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digits")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "quickstart"
    val_acc = client.get_metric_history(run.info.run_id, "val_acc")
    epochs = client.get_metric_history(run.info.run_id, "epoch")
    # One validation a epoch (early stopping may end it before 10); `epoch` rides along with
    # every logged row, as in Lightning.
    assert len(val_acc) >= 5 and len({m.step for m in val_acc}) == len(val_acc)
    assert int(max(m.value for m in epochs)) + 1 == len(val_acc)
    assert max(m.value for m in val_acc) >= 0.95
    params = run.data.params
    assert params["lr"] and params["trainer.precision"] == "32-true"
    assert params["launch.backend"] == "local" and params["trainer.seed"] == "0"
    assert "launch.seed" not in params and "None" not in params.values()  # unset: not logged
    assert "launch.command" not in params
    tags = run.data.tags
    assert tags["launcher.recipe"] == "digits" and len(tags["recipe.sha256"]) == 64
    # Sent from a helper thread, yet never after (so never over) the final state.
    assert tags["launcher.state"] == "finished" and tags["mlflow.source.git.commit"]
    assert tags["mlflow.source.name"] == str(REPO / "recipes" / "digits.py")
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.user"]
    assert "--max-epochs 10 --name quickstart" in tags["mlflow.note.content"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"recipe", "config"} <= artifacts
    best = list((tmp_path / "out" / "digits" / "quickstart" / "checkpoints").glob("digits-best-*"))
    assert len(best) == 1


def test_cifar_resnet_runs_on_fake_data_in_bf16(tmp_path: Path) -> None:
    result = launch_cli(tmp_path, str(REPO / "recipes" / "cifar_resnet.py"), "--max-steps", "2",
                     "--set", "data.fake_data=true", "--set", "data.batch_size=16",
                     "--precision", "bf16-mixed")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("cifar_resnet").experiment_id])
    # The DataModule's hyperparameters are params too: batch-size comparisons show.
    assert run.data.params["batch_size"] == "16" and run.data.params["fake_data"] == "True"
    # A default name says what differs, so legends tell runs apart.
    assert run.info.run_name.startswith("cifar_resnet-fake_data=true-batch_size=16-precision=bf16")


def test_mnist_without_files_says_where_to_put_them(tmp_path: Path) -> None:
    result = launch_cli(tmp_path, str(REPO / "recipes" / "mnist.py"), "--max-steps", "1",
                     "--set", f"data_dir={tmp_path / 'nowhere'}")  # fmt: skip
    assert result.returncode == 2
    assert "train-images-idx3-ubyte" in result.stderr and "Traceback" not in result.stderr


def test_recipe_runs_directly_as_a_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "recipes" / "tiny.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(tmp_path.glob("outputs/tiny/*/checkpoints/resume/manifest.json"))


def test_transformer_recipe_trains_a_few_steps_on_cpu(tmp_path: Path) -> None:
    result = launch_cli(tmp_path, str(REPO / "recipes" / "transformer.py"), "--accelerator", "cpu",
                     "--max-steps", "3", "--set", "n_layers=2", "--set", "d_model=64",
                     "--set", "n_heads=4")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    bad = launch_cli(tmp_path, str(REPO / "recipes" / "transformer.py"), "--accelerator", "cpu",
                  "--max-steps", "1", "--set", "d_model=64")  # fmt: skip
    assert bad.returncode == 2 and "--set n_heads=4" in bad.stderr and "Traceback" not in bad.stderr


def test_gpu_check_refuses_clearly_without_a_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: run bench/gpu_check.sh itself")
    result = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "GPU" in result.stdout + result.stderr
