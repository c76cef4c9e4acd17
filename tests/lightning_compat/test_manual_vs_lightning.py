"""Manual optimization under Lightning and here: the same GAN recipe (recipes/gan.py in this
folder), its hook sequence, optimizer steps, global step, schedulers and logged steps.

    python -m pytest tests/lightning_compat/test_manual_vs_lightning.py -x -q
"""

from __future__ import annotations

import pytest

from tests.lightning_compat.harness import run_recipe


@pytest.fixture(scope="module")
def gan_reports(tmp_path_factory, lightning_python):
    out = tmp_path_factory.mktemp("gan")
    lightning = run_recipe("lightning", "gan.py", out / "pl", python=lightning_python)
    return lightning, run_recipe("launcher", "gan.py", out / "ours")


def test_gan_steps_and_hooks_are_lightnings(gan_reports):
    lightning, ours = gan_reports
    assert ours["events"] == lightning["events"]
    # Per batch: two backward passes and two optimizer steps (discriminator, then generator),
    # no on_before_zero_grad (opt.zero_grad() is the plain optimizer's), and each step counts.
    assert ours["events"][:8] == [
        "batch_start 0",
        "before_backward", "after_backward", "before_optimizer_step 1",
        "before_backward", "after_backward", "before_optimizer_step 0",
        "batch_end 0 step=2 out=['d_loss', 'loss']",
    ]  # fmt: skip
    assert ours["global_step"] == lightning["global_step"] == 24  # 6 batches x 2 epochs x 2


def test_schedulers_are_left_to_the_model(gan_reports):
    lightning, ours = gan_reports
    # The generator's scheduler is stepped by hand each epoch; the discriminator's
    # interval="step" one is never stepped: the Trainer steps none of them.
    assert ours["lrs"] == lightning["lrs"] == [0.0025, 0.01]
    epoch_ends = [e for e in ours["events"] if e.startswith("epoch_end")]
    assert epoch_ends == ["epoch_end 0 lrs=[0.01, 0.01]", "epoch_end 1 lrs=[0.005, 0.01]"]


def test_loggers_count_batches_not_optimizer_steps(gan_reports):
    lightning, ours = gan_reports
    assert ours["callback_metrics"] == lightning["callback_metrics"]
    rows = {run: [step for step, keys in report["logged"] if "g_loss" in keys]
            for run, report in (("lightning", lightning), ("ours", ours))}  # fmt: skip
    # log_every_n_steps=2 counts batches (Lightning's `_batches_that_stepped`): every second
    # batch, not every second optimizer step, logged at the batches that stepped before it.
    assert rows["lightning"] == [1, 3, 5, 7, 9, 11]
    assert rows["ours"] == rows["lightning"]
    g_losses = [g for g, _d in ours["losses"]]
    assert max(g_losses) - min(g_losses) > 1e-3  # it trains
