"""The local backend: what `--dry-run` prints is the processes `submit` starts; `launch logs`
of any rank while a run runs."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backends.local import LocalBackend
from launcher.spec import LaunchSpec
from tests.resume_harness import REPO, TINY, wait_for, worker_env


def make_spec(tmp_path: Path, **fields) -> LaunchSpec:
    return LaunchSpec(recipe=str(tmp_path / "r.py"), run_dir=str(tmp_path / "run"), name="run",
                      experiment="e", accelerator="cpu", **fields)  # fmt: skip


def test_one_process_runs_the_worker_in_process(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    plan = LocalBackend().plan(spec)
    assert plan.in_process and plan.env == {}
    assert (
        plan.render()
        == f"{shlex.join([sys.executable, '-m', 'launcher.worker', spec.spec_path])}\n"
    )


def test_each_node_is_one_agent_on_one_rendezvous_and_the_render_is_what_runs(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    spec = make_spec(tmp_path, nodes=2, devices_per_node=2, max_restarts=1)
    plan = LocalBackend().plan(spec)
    assert not plan.in_process and len(plan.commands) == 2
    # Exactly the commands and environment `submit(plan)` hands to subprocess.Popen.
    assert plan.render().splitlines() == [
        f"PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 {shlex.join(c)}" for c in plan.commands
    ]
    endpoints = {arg for command in plan.commands for arg in command if "rdzv-endpoint" in arg}
    assert len(endpoints) == 1  # both agents meet at the one port chosen by the plan
    assert all("--max-restarts=1" in c and c[-1] == spec.spec_path for c in plan.commands)
    assert not Path(spec.run_dir).exists()  # planning writes nothing


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2])
def test_logs_of_each_rank_while_a_local_run_runs(tmp_path: Path, devices: int) -> None:
    # `launch logs NAME [--rank N]` during the run: what that rank wrote so far (rank 0 prints
    # the progress; another rank its own output), and `-f` keeps printing until the run ends.
    env = {**worker_env(), "LAUNCHER_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "launcher.cli.app", TINY, "--accelerator", "cpu", "--devices",
         str(devices), "--name", "live", "--output-dir", str(out), "--max-epochs", "2",
         "--set", "step_sleep=0.1", "--set", f"n_train={160 * devices}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def launch(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "launcher.cli.app", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip

    last = devices - 1
    try:
        rank0 = out / "tiny" / "live" / "logs" / "rank0.log"
        assert wait_for(lambda: rank0.is_file() and "Trainable params" in rank0.read_text(), 120)
        assert run.poll() is None
        follow = subprocess.Popen(
            [sys.executable, "-m", "launcher.cli.app", "logs", "live", "--rank", str(last), "-f"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert "Trainable params" in launch("logs", "live").stdout  # rank 0, mid-run
        if devices == 2:
            now = launch("logs", "live", "--rank", "1")
            assert now.returncode == 0, now.stderr
            assert "[launcher] rank 1 of 2 (node 0, local rank 1) on " in now.stdout, now.stdout
            assert "rank 0 prints the progress" in now.stdout
        assert run.poll() is None, "the run ended before the logs were read; make it slower"
        time.sleep(2)
        assert follow.poll() is None  # still following: the run is still going
        assert run.wait(timeout=300) == 0, run.stdout.read() if run.stdout else ""
        followed, err = follow.communicate(timeout=30)
        assert follow.returncode == 0, err
        expected = "run live FINISHED" if devices == 1 else "[launcher] rank 1 of 2"
        assert expected in followed, followed
        missing = launch("logs", "live", "--rank", str(devices))
        assert missing.returncode == 2 and f"--rank {devices}: no such rank" in missing.stderr
        assert f"ranks 0-{last}" in missing.stderr
    finally:
        if run.poll() is None:
            run.kill()


def test_a_thread_count_of_yours_reaches_the_agents_unchanged(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the agents inherit it; the plan adds none
    plan = LocalBackend().plan(make_spec(tmp_path, nodes=2, devices_per_node=1))
    assert plan.env == {"PYTHONUNBUFFERED": "1"}
