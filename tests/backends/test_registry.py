"""The local job registry: round trip, lookup by handle/id/name/prefix, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from backends.base import Job
from backends.registry import JobRegistry
from launcher.errors import UserError
from launcher.spec import LaunchSpec


def make(handle: str, name: str, submitted_at: float, tmp_path: Path) -> tuple[Job, LaunchSpec]:
    backend = handle.split("://")[0]
    run_dir = str(tmp_path / "runs" / name)
    spec = LaunchSpec(recipe="/r/mnist.py", run_dir=run_dir, name=name, experiment="mnist")
    job = Job(handle, backend, run_dir, "/r/mnist.py", name, submitted_at, {"pid": 1})
    return job, spec


@pytest.fixture
def registry(tmp_path: Path) -> JobRegistry:
    reg = JobRegistry(tmp_path / "home")
    for handle, name, when in [
        ("slurm://4242", "mnist-a", 100.0),
        ("slurm://4250", "mnist-b", 200.0),
        ("ray://raysubmit_XyZ", "gpt-small", 300.0),
    ]:
        reg.record(*make(handle, name, when, tmp_path))
    return reg


def test_round_trip(registry: JobRegistry, tmp_path: Path) -> None:
    job = registry.get("slurm://4242")
    assert job == make("slurm://4242", "mnist-a", 100.0, tmp_path)[0]
    record = registry.get_record("mnist-a")
    assert record.spec["experiment"] == "mnist" and record.mlflow_run_id is None
    assert [j.name for j in registry.list()] == ["gpt-small", "mnist-b", "mnist-a"]
    stored = json.loads(Path(registry.jobs_dir, "slurm--4242.json").read_text())
    assert stored["job"]["handle"] == "slurm://4242"


def test_default_root_is_launcher_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAUNCHER_HOME", str(tmp_path / "lh"))
    assert JobRegistry().jobs_dir == tmp_path / "lh" / "jobs"
    monkeypatch.delenv("LAUNCHER_HOME")
    assert JobRegistry().root == Path.home() / ".launcher"


@pytest.mark.parametrize(
    ("ref", "handle"),
    [
        ("slurm://4250", "slurm://4250"),
        ("4242", "slurm://4242"),
        ("gpt-small", "ray://raysubmit_XyZ"),
        ("raysubmit", "ray://raysubmit_XyZ"),  # unique prefix of the native id
        ("gpt", "ray://raysubmit_XyZ"),  # unique prefix of the name
        ("ray://", "ray://raysubmit_XyZ"),  # unique prefix of the handle
    ],
)
def test_get_by_any_reference(registry: JobRegistry, ref: str, handle: str) -> None:
    assert registry.get(ref).handle == handle


def test_ambiguous_and_unknown_references(registry: JobRegistry) -> None:
    with pytest.raises(UserError, match="matches several jobs: slurm://4250 .*slurm://4242"):
        registry.get("mnist")
    with pytest.raises(UserError) as info:
        registry.get("mnist-c")
    assert "no job 'mnist-c'" in str(info.value)
    assert "Close matches:" in str(info.value) and "mnist-a" in str(info.value)
    with pytest.raises(UserError, match="empty job reference"):
        registry.get("  ")


def test_resumed_run_name_means_the_newest_job(registry: JobRegistry, tmp_path: Path) -> None:
    registry.record(*make("slurm://4300", "mnist-a", 400.0, tmp_path))
    assert registry.get("mnist-a").handle == "slurm://4300"
    assert registry.get("mnist-a").native_id == "4300"


def test_update_keeps_spec_and_mlflow_run(registry: JobRegistry, tmp_path: Path) -> None:
    job, spec = make("local://77", "local-run", 500.0, tmp_path)
    registry.record(job, spec, mlflow_run_id="abc123")
    job.extra["state"] = "SUCCEEDED"
    registry.update(job)
    record = registry.get_record("local://77")
    assert record.job.extra == {"pid": 1, "state": "SUCCEEDED"}
    assert record.mlflow_run_id == "abc123" and record.spec["name"] == "local-run"


def test_unreadable_files_are_skipped(registry: JobRegistry) -> None:
    (registry.jobs_dir / "garbage.json").write_text("{not json")
    bad = {"handle": "no-scheme", "backend": "slurm", "run_dir": "/x"}
    (registry.jobs_dir / "bad-handle.json").write_text(json.dumps({"job": bad}))
    (registry.jobs_dir / "missing-fields.json").write_text(json.dumps({"job": {"handle": "a://b"}}))
    assert len(registry.list()) == 3


def _writer(root: str, worker: int, count: int) -> None:
    reg = JobRegistry(root)
    for i in range(count):
        job, spec = make(f"ray://w{worker}-{i}", f"run-{worker}-{i}", worker * 1000 + i, Path(root))
        reg.record(job, spec)
        # Everyone also rewrites one shared job: updates must never leave a torn file.
        shared, _ = make("slurm://shared", "shared", 1.0, Path(root))
        shared.extra = {"writer": worker, "i": i}
        reg.update(shared)
        # Readers run while others write: a half-written file would be missing here.
        assert reg.get("slurm://shared").name == "shared"


def test_concurrent_writers(tmp_path: Path) -> None:
    root = str(tmp_path / "home")
    writers, count = 4, 25
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(root, w, count)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    reg = JobRegistry(root)
    names = {job.name for job in reg.list()}
    assert names == {f"run-{w}-{i}" for w in range(writers) for i in range(count)} | {"shared"}
    assert reg.get("slurm://shared").extra["i"] == count - 1
    leftovers = [p.name for p in reg.jobs_dir.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []
