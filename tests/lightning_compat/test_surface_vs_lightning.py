"""configure_model, estimated_stepping_batches, is_last_batch, the accumulation schedule,
LambdaCallback, BaseFinetuning, all_gather, freeze/unfreeze, Timer and bf16-true: the same
recipe under Lightning and here (recipes/surface.py) records the same things."""

from __future__ import annotations

import pytest

from tests.lightning_compat.harness import run_recipe

pytestmark = pytest.mark.slow


def test_the_surface_recipe_records_the_same_under_both(tmp_path, lightning_python):
    lightning = run_recipe("lightning", "surface.py", tmp_path / "pl", python=lightning_python)
    ours = run_recipe("launcher", "surface.py", tmp_path / "ours")
    assert lightning["steps"] == [[0, 1, 5], [1, 2, 3], [2, 2, 3]]  # the recipe does what we think
    differ = {k: (ours.get(k), lightning[k]) for k in lightning if ours.get(k) != lightning[k]}
    assert not differ, differ  # key: (ours, Lightning's)
