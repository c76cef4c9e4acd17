"""The hook sequence, validation runs and metric names of recipes run under Lightning and here.

Each recipe is written for Lightning and run unchanged but for its imports (harness.py). The
checkpoint hooks are left out of the sequence: which checkpoints a run writes (and so how
often `on_save_checkpoint` runs) is the checkpoint format's business, compared elsewhere.
"""

from __future__ import annotations

import pytest

from tests.lightning_compat.harness import run_recipe

CHECKPOINT_HOOKS = ("on_save_checkpoint", "on_load_checkpoint")


def comparable(hooks: list[str]) -> list[str]:
    return [h for h in hooks if h.removeprefix("module.") not in CHECKPOINT_HOOKS]


def validation_runs(hooks: list[str]) -> int:
    return hooks.count("on_validation_start")


@pytest.fixture(scope="module")
def classifier_reports(tmp_path_factory, lightning_python):
    out = tmp_path_factory.mktemp("classifier")
    lightning = run_recipe("lightning", "classifier.py", out / "pl", python=lightning_python)
    return lightning, run_recipe("launcher", "classifier.py", out / "ours")


@pytest.fixture(scope="module")
def module_hook_reports(tmp_path_factory, lightning_python):
    out, stages = tmp_path_factory.mktemp("module_hooks"), "fit,validate,test,resume"
    pl = run_recipe("lightning", "module_hooks.py", out / "pl", stages, python=lightning_python)
    return pl, run_recipe("launcher", "module_hooks.py", out / "ours", stages)


def test_classifier_calls_the_callback_hooks_as_lightning_does(classifier_reports):
    lightning, ours = classifier_reports
    assert comparable(ours["hooks"]) == comparable(lightning["hooks"])
    # The sanity check (num_sanity_val_steps=1) and one validation per epoch.
    assert validation_runs(ours["hooks"]) == validation_runs(lightning["hooks"]) == 3
    assert ours["fit_metrics"] == lightning["fit_metrics"]
    assert ours["test"] == lightning["test"]
    assert ours["global_step"] == lightning["global_step"]


def test_module_and_callback_hooks_interleave_as_in_lightning(module_hook_reports):
    """fit (sanity check, accumulation over 3 batches), validate, test, and a resumed fit."""
    lightning, ours = module_hook_reports
    assert comparable(ours["hooks"]) == comparable(lightning["hooks"])
    for stage in ("fit", "validate", "test"):
        assert ours.get(f"{stage}_metrics", ours.get(stage)) == lightning.get(
            f"{stage}_metrics", lightning.get(stage)
        )
    # As Lightning: a resumed fit runs its sanity check again.
    resumed = ours["hooks"][ours["hooks"].index("== resumed") :]
    assert "on_sanity_check_start" in resumed
