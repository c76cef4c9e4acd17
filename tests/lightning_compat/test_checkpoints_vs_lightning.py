"""Checkpoints across runtimes: each loads the other's through `load_from_checkpoint`.

One recipe (recipes/checkpoints.py) trains under Lightning and under launcher (imports renamed);
each runtime then loads the other's `last.ckpt` with `Regressor.load_from_checkpoint`. Our side
loads with `torch.load(weights_only=True)`: Lightning's checkpoint of this recipe holds only
tensors and plain data, so it passes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.lightning_compat.harness import run_recipe


def test_each_runtime_loads_the_others_checkpoint(tmp_path: Path, lightning_python: str) -> None:
    theirs = run_recipe("lightning", "checkpoints.py", tmp_path / "pl", python=lightning_python)
    ours = run_recipe("launcher", "checkpoints.py", tmp_path / "ours")
    # Ours holds every top-level key Lightning writes, plus launcher_* ones for exact resume.
    assert set(theirs["keys"]) <= set(ours["keys"])
    assert all(k.startswith("launcher_") for k in set(ours["keys"]) - set(theirs["keys"]))
    assert ours["hparams"] == theirs["hparams"] == {"hidden": 6, "lr": 0.05, "note": "saved"}

    by_lightning = run_recipe("lightning", "checkpoints.py", tmp_path / "pl_loads_ours", "load",
                              ours["checkpoint"], python=lightning_python)  # fmt: skip
    assert by_lightning["outputs"] == ours["outputs"]
    assert by_lightning["hparams"] == ours["hparams"]
    by_us = run_recipe("launcher", "checkpoints.py", tmp_path / "ours_loads_pl", "load",
                       theirs["checkpoint"])  # fmt: skip
    assert by_us["outputs"] == theirs["outputs"]
    assert by_us["hparams"] == theirs["hparams"]
    # Neither switches the loaded model to eval mode.
    assert by_us["training"] is by_lightning["training"] is True


@pytest.mark.slow
def test_datamodule_hyperparameters_and_state_are_saved_as_lightnings(lightning_python, tmp_path):
    lightning = run_recipe("lightning", "datamodule_ckpt.py", tmp_path / "pl",
                           python=lightning_python)  # fmt: skip
    ours = run_recipe("launcher", "datamodule_ckpt.py", tmp_path / "ours")
    fields = ("keys", "hparams_name", "hparams", "state", "loaded_hparams", "loaded_served")
    assert {k: ours[k] for k in fields} == {k: lightning[k] for k in fields}
    assert ours["keys"] == ["Data", "datamodule_hparams_name", "datamodule_hyper_parameters"]
    assert ours["hparams_name"] == "config" and ours["loaded_served"] == 1
    # Lightning's file rebuilds our DataModule the same way.
    renamed = importlib.util.spec_from_file_location(
        "renamed", tmp_path / "ours" / "datamodule_ckpt.py"
    )
    module = importlib.util.module_from_spec(renamed)
    renamed.loader.exec_module(module)  # the recipe as run_recipe wrote it for launcher
    dm = module.Data.load_from_checkpoint(lightning["checkpoint"])
    assert (dict(dm.hparams), dm.served) == ({"batch_size": 8, "root": "/data"}, 1)
