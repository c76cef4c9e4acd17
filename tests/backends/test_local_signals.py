"""Issue 15, item 6: a local run stopped by the user says so in one line and ends KILLED.

Ctrl-C (SIGINT), a closed terminal (SIGHUP) or `kill` (SIGTERM) of the `launch` process, with
one process or two (torchrun): a checkpoint, the MLflow run KILLED, exit 130 (SIGINT) or 143,
"resume with: launch resume NAME", no traceback; resuming flips the same run back to RUNNING.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.resume_harness import (
    made_progress,
    make_spec,
    newest_step,
    run_worker,
    start_backend,
    start_worker,
    wait_for,
)

pytestmark = pytest.mark.slow

SLOW = {"n_train": "320", "step_sleep": "0.05", "trainer.max_epochs": "2",
        "trainer.checkpoint_every_n_steps": "2"}  # fmt: skip


def _runs(out: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    experiment = client.get_experiment_by_name("tiny")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _new_text(log: Path, before: int) -> str:
    return log.read_text()[before:]


@pytest.mark.parametrize(
    ("devices", "sig", "code"),
    [
        (1, signal.SIGINT, 130),
        (1, signal.SIGTERM, 143),
        (2, signal.SIGINT, 130),
        (2, signal.SIGHUP, 143),
    ],
)
def test_a_stopped_local_run_checkpoints_ends_killed_and_resumes_the_same_run(
    tmp_path: Path, devices: int, sig: signal.Signals, code: int
) -> None:
    fields = {"devices_per_node": devices, "accelerator": "cpu"} if devices > 1 else {}
    # Two ranks share the 160 steps: more data, so the resumed run outlives the first look.
    overrides = {**SLOW, "n_train": "1280"} if devices > 1 else SLOW
    spec = make_spec(tmp_path, "stopped", overrides=overrides, **fields)
    log = tmp_path / "run.log"
    proc = start_backend(spec, log)
    assert made_progress(spec, proc), log.read_text()[-3000:]
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == code, log.read_text()[-3000:]

    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    stops = [line for line in text.splitlines() if f"stopped by {sig.name}" in line]
    assert len(stops) == 1, text[-3000:]
    assert "resume with: launch resume stopped" in stops[0].lower()
    assert newest_step(spec) > 0
    (run,) = _runs(tmp_path)
    assert run.info.status == "KILLED"
    assert run.data.tags["launcher.state"] == "killed"

    before = log.stat().st_size
    resumed = start_backend(spec, log)  # `launch resume stopped` runs the same spec again
    assert made_progress(spec, resumed), log.read_text()[-3000:]
    # The same run, RUNNING again (once the logger's first records reach the store).
    assert wait_for(lambda: _runs(tmp_path)[0].info.status != "KILLED", 60, interval=0.2)
    assert _runs(tmp_path)[0].info.status == "RUNNING"
    assert [r.info.run_id for r in _runs(tmp_path)] == [run.info.run_id]
    assert resumed.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert "resumed from" in _new_text(log, before)
    (finished,) = _runs(tmp_path)
    assert finished.info.run_id == run.info.run_id and finished.info.status == "FINISHED"


def test_a_user_error_during_resume_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "refused", overrides=SLOW)
    log = tmp_path / "run.log"
    proc = start_worker(spec, log)
    assert made_progress(spec, proc), log.read_text()[-3000:]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, log.read_text()[-3000:]
    (run,) = _runs(tmp_path)
    assert run.info.status == "KILLED"

    changed = make_spec(tmp_path, "refused",
                        overrides={**SLOW, "trainer.accumulate_grad_batches": "2"})  # fmt: skip
    assert run_worker(changed, log) == 2
    assert "accumulate_grad_batches changed from 1 to 2" in log.read_text()
    (after,) = _runs(tmp_path)
    assert after.info.status == "KILLED" and after.data.tags["launcher.state"] == "killed"
