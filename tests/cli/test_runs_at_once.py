"""Runs started at once, stopped by Ctrl-C, resumed by name or by `--resume auto`; `launch sync`.

Real `launch` processes on the local backend, a real sqlite MLflow store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.resume_harness import TINY, wait_for

pytestmark = pytest.mark.slow

SLOW = ["--set", "step_sleep=0.05", "--set", "trainer.checkpoint_every_n_steps=2"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", LAUNCHER_HOME=str(tmp_path / "home"),
               **extra)  # fmt: skip
    return env


def _start(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen:
    where = [] if args[0] in ("sync", "resume") else ["--output-dir", str(tmp_path / "out")]
    return subprocess.Popen(
        [sys.executable, "-m", "launcher.cli.app", *args, *where],
        cwd=tmp_path, env=_env(tmp_path, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _launch(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    proc = _start(tmp_path, *args, **env)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_two_first_runs_at_once_are_both_listed_and_a_second_same_name_is_refused(
    tmp_path: Path,
) -> None:
    first = _start(tmp_path, TINY, "--name", "r1", *SLOW)
    other = _start(tmp_path, TINY, "--name", "r2", *SLOW)  # same fresh store, at the same time
    lock = tmp_path / "out" / "tiny" / "r1" / ".running.lock"
    assert wait_for(lambda: lock.exists() and lock.read_text().startswith("pid"), 120)
    same = _launch(tmp_path, TINY, "--name", "r1", *SLOW)
    assert same.returncode == 2, same.stderr[-2000:]
    assert "run 'r1' is already running (pid " in same.stderr and "Traceback" not in same.stderr
    assert "launch resume r1" in same.stderr
    done = [_finish(first), _finish(other)]
    assert [d.returncode for d in done] == [0, 0], [d.stderr[-2000:] for d in done]
    listed = _launch(tmp_path, "runs")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "r1" in listed.stdout and "r2" in listed.stdout


def test_a_ctrl_c_run_resumes_by_name_and_by_resume_auto_without_a_name(tmp_path: Path) -> None:
    proc = _start(tmp_path, TINY, "--name", "c1", *SLOW, "--max-epochs", "6")
    manifest = tmp_path / "out" / "tiny" / "c1" / "checkpoints" / "resume" / "manifest.json"
    assert wait_for(manifest.exists, 120)
    # While it runs, the registry knows it (local runs used to be recorded only at the end).
    (record,) = (tmp_path / "home" / "jobs").glob("*.json")
    assert json.loads(record.read_text())["job"]["name"] == "c1"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    resumed = _launch(tmp_path, "resume", "c1")
    assert "resumed from" in resumed.stdout + resumed.stderr, resumed.stderr[-2000:]
    # Another interrupted run, newer, then `--resume auto` without --name picks it.
    proc = _start(tmp_path, TINY, "--name", "c2", *SLOW, "--max-epochs", "6")
    manifest = tmp_path / "out" / "tiny" / "c2" / "checkpoints" / "resume" / "manifest.json"
    assert wait_for(manifest.exists, 120)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    auto = _launch(tmp_path, TINY, "--resume", "auto", "--max-steps", "1")
    text = auto.stdout + auto.stderr
    assert "--resume auto: resuming run 'c2', the newest unfinished run of tiny.py" in text
    assert f"resumed from {tmp_path / 'out' / 'tiny' / 'c2'}" in text, text[-2000:]


def test_sync_honours_mlflow_tracking_uri(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    down = "http://127.0.0.1:9"  # nothing listens: every record goes to the run's spool
    ran = _launch(tmp_path, TINY, "--name", "s1", "--max-steps", "3", MLFLOW_TRACKING_URI=down,
                  MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    run_dir = tmp_path / "out" / "tiny" / "s1"
    store = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    synced = _launch(tmp_path, "sync", str(run_dir), MLFLOW_TRACKING_URI=store)
    assert synced.returncode == 0, synced.stderr[-2000:]
    assert "sent" in synced.stdout
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [0, 1, 2]
