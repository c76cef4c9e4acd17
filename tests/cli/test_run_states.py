"""Issue 15, item 6: run states that tell the truth when a run's processes cannot.

A run whose processes all die without a word (SIGKILL) is shown LOST by `launch jobs` and
`launch runs` once its heartbeat is stale, and marked FAILED + "lost" in MLflow by the
command that notices; `launch resume` flips the same MLflow run back to RUNNING and finishes
it FINISHED. (Cancel on SLURM and Ray: tests/backends/test_slurm.py and test_ray.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from launcher.cli.app import app
from launcher.common import heartbeat
from tests.resume_harness import REPO, TINY, kill_tree, wait_for, worker_env

SLOW = ["--set", "n_train=1280", "--set", "step_sleep=0.15", "--set", "trainer.max_epochs=2",
        "--set", "trainer.checkpoint_every_n_steps=2"]  # fmt: skip


def cli(*args: str) -> object:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def launch_process(out: Path, home: Path, *args: str) -> subprocess.Popen:
    env = worker_env(LAUNCHER_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, "-m", "launcher.cli.app", *args],
        cwd=REPO, env=env, stdout=open(out.parent / "launch.log", "ab"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def mlflow_runs(out: Path) -> list:
    from mlflow.tracking import MlflowClient

    if not (out / "mlflow.db").exists():  # never create it here: the run creates it
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    experiment = client.get_experiment_by_name("tiny")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def job_state(name: str) -> str:
    listed = cli("jobs", "--json")
    assert listed.exit_code == 0, listed.output
    return next(row["state"] for row in json.loads(listed.stdout) if row["name"] == name)


def run_row(out: Path) -> dict:
    listed = cli("runs", "--json", "--output-dir", str(out))
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    return row


@pytest.mark.slow
def test_a_sigkilled_run_is_lost_marked_failed_and_resumes_the_same_run(tmp_path, monkeypatch):
    out, home = tmp_path / "out", tmp_path / "home"
    out.mkdir()
    monkeypatch.setenv("LAUNCHER_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(heartbeat, "STALE_S", 8.0)  # 30 s in real use; beats every 5 s
    run_dir = out / "tiny" / "lost"
    proc = launch_process(out, home, TINY, "--name", "lost", "--output-dir", str(out), *SLOW)
    manifest = run_dir / "checkpoints" / "resume" / "manifest.json"
    log = tmp_path / "launch.log"
    assert wait_for(lambda: manifest.exists() and len(mlflow_runs(out)) == 1, 120, 0.5), (
        log.read_text()[-3000:]
    )
    assert wait_for(lambda: "launcher.run_dir" in mlflow_runs(out)[0].data.tags, 30, 0.5)
    assert (run_dir / "heartbeat").is_file()
    time.sleep(heartbeat.STALE_S + 1)  # beating: never stale while it runs
    assert job_state("lost") == "RUNNING"
    assert run_row(out)["state"] == "RUNNING"

    kill_tree(proc, 9)  # every process, without a word
    (before,) = mlflow_runs(out)
    assert before.info.status == "RUNNING"  # nobody said anything yet
    assert job_state("lost") == "RUNNING"  # not stale yet
    time.sleep(heartbeat.STALE_S + 1)
    assert job_state("lost") == "LOST"
    row = run_row(out)
    assert row["state"] == "LOST" and row["mlflow_status"] == "FAILED"
    (marked,) = mlflow_runs(out)
    assert marked.info.run_id == before.info.run_id
    assert marked.data.tags["launcher.state"] == "lost"
    assert "resume with: launch resume lost" in marked.data.tags["launcher.end_reason"]

    resumed = launch_process(out, home, "resume", "lost")  # the same run dir and spec
    assert wait_for(lambda: mlflow_runs(out)[0].info.status == "RUNNING", 120, 0.2), (
        log.read_text()[-3000:]
    )
    assert job_state("lost") == "RUNNING"
    assert resumed.wait(timeout=300) == 0, log.read_text()[-3000:]
    (finished,) = mlflow_runs(out)
    assert finished.info.run_id == before.info.run_id and finished.info.status == "FINISHED"
    assert finished.data.tags["launcher.state"] == "finished"
    assert run_row(out)["state"] == "SUCCEEDED"
    assert not (run_dir / "heartbeat").exists()  # a run that ended beats no more
    assert "resumed from" in log.read_text()


def test_the_heartbeat_beats_while_the_block_runs_and_is_gone_after(tmp_path):
    with heartbeat.beating(tmp_path, interval_s=0.05):
        first = (tmp_path / "heartbeat").stat().st_mtime_ns
        assert wait_for(lambda: (tmp_path / "heartbeat").stat().st_mtime_ns > first, 5)
        assert heartbeat.heartbeat_age(tmp_path) < 1 and not heartbeat.is_lost(tmp_path)
    assert heartbeat.heartbeat_age(tmp_path) is None and not heartbeat.is_lost(tmp_path)
    (tmp_path / "heartbeat").touch()  # left by a process that died
    old = time.time() - heartbeat.STALE_S - 1
    os.utime(tmp_path / "heartbeat", (old, old))
    assert heartbeat.is_lost(tmp_path)


@pytest.mark.slow
def test_launch_cancel_of_a_local_run_stops_it_killed_in_one_vocabulary(tmp_path, monkeypatch):
    out, home = tmp_path / "out", tmp_path / "home"
    out.mkdir()
    monkeypatch.setenv("LAUNCHER_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    proc = launch_process(out, home, TINY, "--name", "stopme", "--output-dir", str(out), *SLOW)
    manifest = out / "tiny" / "stopme" / "checkpoints" / "resume" / "manifest.json"
    log = tmp_path / "launch.log"
    assert wait_for(lambda: manifest.exists() and len(mlflow_runs(out)) == 1, 120, 0.5), (
        log.read_text()[-3000:]
    )
    cancelled = cli("cancel", "stopme")  # from another terminal: waits until it stopped
    assert cancelled.exit_code == 0 and "CANCELLED" in cancelled.stdout, cancelled.output
    assert proc.wait(timeout=60) == 143, log.read_text()[-3000:]
    (run,) = mlflow_runs(out)
    assert run.info.status == "KILLED" and run.data.tags["launcher.state"] == "killed"
    assert job_state("stopme") == "CANCELLED" and run_row(out)["state"] == "CANCELLED"
    again = cli("cancel", "stopme")
    assert again.exit_code == 0 and "already ended: CANCELLED" in again.output  # nothing to do


def test_launch_runs_marks_a_running_run_with_a_stale_heartbeat_lost(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("LAUNCHER_HOME", str(tmp_path / "home"))  # no job recorded: runs only
    out = tmp_path / "out"
    out.mkdir()
    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    experiment = client.create_experiment("tiny")
    dead, live, old = (tmp_path / name for name in ("dead", "live", "old"))
    for run_dir in (dead, live):
        run_dir.mkdir()
        (run_dir / "heartbeat").touch()
    stale = time.time() - heartbeat.STALE_S - 5
    os.utime(dead / "heartbeat", (stale, stale))
    ids = {}
    for name, run_dir in (("dead", dead), ("live", live), ("old", old)):  # old: no heartbeat
        run = client.create_run(experiment, run_name=name, tags={"launcher.run_dir": str(run_dir)})
        ids[name] = run.info.run_id
    listed = cli("runs", "--json", "--output-dir", str(out))
    assert listed.exit_code == 0, listed.output
    states = {row["name"]: row["state"] for row in json.loads(listed.stdout)}
    assert states == {"dead": "LOST", "live": "RUNNING", "old": "RUNNING"}
    marked = client.get_run(ids["dead"])
    assert marked.info.status == "FAILED" and marked.data.tags["launcher.state"] == "lost"
    assert "resume with: launch resume dead" in marked.data.tags["launcher.end_reason"]
    assert client.get_run(ids["live"]).info.status == "RUNNING"
