"""The local backend's plan: what `--dry-run` prints is the processes `submit` starts."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from backends.local import LocalBackend
from launcher.spec import LaunchSpec


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


def test_a_thread_count_of_yours_reaches_the_agents_unchanged(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the agents inherit it; the plan adds none
    plan = LocalBackend().plan(make_spec(tmp_path, nodes=2, devices_per_node=1))
    assert plan.env == {"PYTHONUNBUFFERED": "1"}
