"""Real multi-process DDP on CPU (gloo) through the local backend's torchrun agents."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from launcher.errors import REQUEUE_EXIT_CODE
from tests.resume_harness import (
    assert_bitwise_equal,
    final_state,
    kill_tree,
    made_progress,
    make_spec,
    run_worker,
    start_backend,
    wait_for,
    worker_pids,
)

pytestmark = pytest.mark.slow

# Same global batch (16) and no dropout: the runs must agree up to float rounding.
BASE = {"dropout": "0.0", "n_train": "96", "trainer.max_epochs": "2",
        "trainer.enable_progress_bar": "true"}  # fmt: skip
SLOW = {**BASE, "n_train": "320", "step_sleep": "0.05", "trainer.max_epochs": "1",
        "trainer.checkpoint_every_n_steps": "2"}  # fmt: skip


def _run(spec, log: Path) -> int:
    proc = start_backend(spec, log)
    return proc.wait(timeout=300)


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    single = make_spec(tmp_path, "single", overrides={**BASE, "batch_size": "16"})
    assert run_worker(single, tmp_path / "single.log") == 0
    expected = final_state(single)["state_dict"]
    for name, nodes, devices in [("ddp2", 1, 2), ("nodes2", 2, 1)]:
        spec = make_spec(tmp_path, name, nodes=nodes, devices_per_node=devices,
                         accelerator="cpu", overrides={**BASE, "batch_size": "8"})  # fmt: skip
        log = tmp_path / f"{name}.log"
        assert _run(spec, log) == 0, log.read_text()[-3000:]
        got = final_state(spec)["state_dict"]
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)
        logs = Path(spec.run_dir) / "logs"
        assert (logs / "rank0.log").exists() and (logs / "rank1.log").exists()
        assert "[rank 0]" in log.read_text()


def test_a_killed_rank_fails_the_job_fast_or_restarts_and_finishes(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "dies", devices_per_node=2, accelerator="cpu", overrides=SLOW)
    log = tmp_path / "dies.log"
    proc = start_backend(spec, log)
    assert made_progress(spec, proc), log.read_text()[-3000:]
    killed_at = time.monotonic()
    os.kill(worker_pids(proc)[1], signal.SIGKILL)
    code = proc.wait(timeout=60)
    assert time.monotonic() - killed_at < 60
    assert code != 0
    assert "error: rank 1 failed" in log.read_text()

    reference = make_spec(tmp_path, "reference", devices_per_node=2, accelerator="cpu",
                          overrides=SLOW)  # fmt: skip
    assert _run(reference, tmp_path / "reference.log") == 0
    spec = make_spec(tmp_path, "restarts", devices_per_node=2, accelerator="cpu",
                     max_restarts=1, overrides=SLOW)  # fmt: skip
    log = tmp_path / "restarts.log"
    proc = start_backend(spec, log)
    assert made_progress(spec, proc)
    os.kill(worker_pids(proc)[1], signal.SIGKILL)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert "resumed from" in log.read_text()
    assert_bitwise_equal(final_state(reference)["state_dict"], final_state(spec)["state_dict"])


LONG = {**SLOW, "n_train": "1120", "trainer.signal_sync_every_n_steps": "2"}  # 70 steps


def test_sigkill_and_preemption_signals_resume_bitwise_with_two_processes(tmp_path: Path) -> None:
    reference = make_spec(tmp_path, "reference", devices_per_node=2, accelerator="cpu",
                          overrides=LONG)  # fmt: skip
    assert _run(reference, tmp_path / "reference.log") == 0
    expected = final_state(reference)
    spec = make_spec(tmp_path, "interrupted", devices_per_node=2, accelerator="cpu",
                     overrides=LONG)  # fmt: skip
    log = tmp_path / "interrupted.log"
    rng = random.Random(7)
    events = ["kill", "kill", signal.SIGTERM, "kill", signal.SIGUSR2]
    for _attempt in range(len(events) + 3):
        proc = start_backend(spec, log)
        if events and made_progress(spec, proc):
            wait_for(lambda p=proc: p.poll() is not None, rng.uniform(0.0, 0.2))
            event = events.pop(0)
            if event == "kill":  # the whole job dies at once, agents and workers
                kill_tree(proc)
            else:  # like SLURM: every task gets the signal
                for pid in worker_pids(proc).values():
                    os.kill(pid, event)
                assert proc.wait(timeout=120) == REQUEUE_EXIT_CODE, log.read_text()[-3000:]
            continue
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
        break
    assert not events, f"the run finished before these interruptions: {events}"
    got = final_state(spec)
    assert_bitwise_equal(expected["state_dict"], got["state_dict"], "model")
    assert_bitwise_equal(expected["optimizer_states"], got["optimizer_states"], "optimizers")


def test_mid_epoch_validation_resumes_bitwise_with_two_processes(tmp_path: Path) -> None:
    """val_check_interval=0.25 on 2 processes (20 steps per epoch, validation every 5): killed
    and signalled between two validations, the run ends bit-identical to an uninterrupted one
    and validated at the same steps, each once."""
    from tests.resume_harness import logger_run, metric_steps, newest_step

    overrides = {**SLOW, "trainer.max_epochs": "2", "trainer.val_check_interval": "0.25"}
    reference = make_spec(tmp_path, "reference", devices_per_node=2, accelerator="cpu",
                          overrides=overrides)  # fmt: skip
    assert _run(reference, tmp_path / "reference.log") == 0
    expected = final_state(reference)
    spec = make_spec(tmp_path, "interrupted", devices_per_node=2, accelerator="cpu",
                     overrides=overrides)  # fmt: skip
    log = tmp_path / "interrupted.log"
    events, between = ["kill", signal.SIGTERM, "kill"], 0
    for _attempt in range(len(events) + 3):
        proc = start_backend(spec, log)
        if events and made_progress(spec, proc):
            step, event = newest_step(spec), events.pop(0)
            if event == "kill":
                kill_tree(proc)
            else:
                for pid in worker_pids(proc).values():
                    os.kill(pid, event)
                assert proc.wait(timeout=120) == REQUEUE_EXIT_CODE, log.read_text()[-3000:]
            between += step % 5 != 0
            continue
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
        break
    assert not events and between >= 2, f"left {events}, {between} between validations"
    got = final_state(spec)
    assert_bitwise_equal(expected["state_dict"], got["state_dict"], "model")
    assert_bitwise_equal(expected["optimizer_states"], got["optimizer_states"], "optimizers")
    run_id = logger_run(next(iter(got["launcher_loggers"].values())))
    ref_id = logger_run(next(iter(expected["launcher_loggers"].values())))
    assert metric_steps(tmp_path, run_id, "val_loss") == list(range(4, 40, 5))
    assert metric_steps(tmp_path, ref_id, "val_loss") == list(range(4, 40, 5))


SAVE_HOOKS = str(Path(__file__).resolve().parents[1] / "recipes" / "save_hooks.py")


def test_on_save_checkpoint_runs_on_every_rank(tmp_path: Path) -> None:
    # Lightning calls on_save_checkpoint on every rank (only rank 0 writes the file).
    spec = make_spec(tmp_path, "hooks", recipe=SAVE_HOOKS, devices_per_node=2,
                     accelerator="cpu", overrides={**BASE, "batch_size": "8"})  # fmt: skip
    log = tmp_path / "hooks.log"
    assert _run(spec, log) == 0, log.read_text()[-3000:]
    run_dir = Path(spec.run_dir)
    rank0 = (run_dir / "saves_rank0.txt").read_text().split()
    rank1 = (run_dir / "saves_rank1.txt").read_text().split()
    # 96 samples / (2 ranks x 8) = 6 steps an epoch. Per epoch: Lightning's default
    # ModelCheckpoint file (Lightning calls the hook for it too), then our resume checkpoint
    # (after epoch 0, and the finished run's last one; ARCHITECTURE.md, Checkpoint: user hooks
    # run for those too, so the resume holds the keys they add).
    assert rank0 == rank1 == ["6", "6", "12", "12"]
    assert final_state(spec)["saves"] == 4
