"""The `launch` CLI: argv defaults, validation (exit 2, no traceback), submission plumbing.

Backends here are `FakeBackend`, registered under the name "fake": submission to real
schedulers is tested in tests/test_<backend>.py; this file tests what the CLI does with them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import backends
from backends.base import Backend, Job, JobState, Plan
from backends.registry import JobRegistry
from launcher.cli.app import app, default_to_run
from launcher.cli.spec_builder import LaunchOptions, build_spec
from launcher.errors import UserError
from launcher.spec import LaunchSpec
from launcher.worker import trainer_arguments

REPO = Path(__file__).resolve().parents[2]
RECIPE = """
from torch import nn
import launcher


class TinyModel(launcher.Module):
    def __init__(self, hidden_dim: int = 8, lr: float = 1e-3):
        super().__init__()
        self.net = nn.Linear(4, hidden_dim)
"""


@dataclass
class FakePlan(Plan):
    def render(self) -> str:
        return f"python -m launcher.worker {self.spec.spec_path}"


class FakeBackend(Backend[FakePlan]):
    """Records what the CLI hands it; states and exit codes are set by each test."""

    name = "fake"
    planned: list[LaunchSpec] = []
    submitted: list[LaunchSpec] = []
    states: dict[str, JobState | Exception] = {}
    cancelled: list[str] = []
    foreground_exit_code: int | None = None

    def plan(self, spec: LaunchSpec) -> FakePlan:
        FakeBackend.planned.append(spec)
        return FakePlan(spec)

    def schedule(self, plan: FakePlan) -> Job:
        spec = plan.spec
        FakeBackend.submitted.append(spec)
        job = Job(f"fake://{len(self.submitted)}", "fake", spec.run_dir, spec.recipe, spec.name)
        if FakeBackend.foreground_exit_code is not None:
            job.extra["exit_code"] = FakeBackend.foreground_exit_code
        return job

    def status(self, job: Job) -> JobState:
        state = FakeBackend.states.get(job.handle, JobState.RUNNING)
        if isinstance(state, Exception):
            raise state
        return state

    def logs(self, job: Job, rank: int | None = None, follow: bool = False) -> Iterator[str]:
        yield f"log of {job.handle} rank {rank or 0} follow={follow}\n"

    def cancel(self, job: Job) -> None:
        FakeBackend.cancelled.append(job.handle)
        FakeBackend.states[job.handle] = JobState.CANCELLED  # as a scheduler does, at once

    def wait(self, job: Job, poll_seconds: float = 2.0) -> JobState:
        return self.status(job)


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAUNCHER_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(backends.BACKENDS, "fake", f"{__name__}:FakeBackend")
    FakeBackend.submitted, FakeBackend.states, FakeBackend.cancelled = [], {}, []
    FakeBackend.planned = []
    FakeBackend.foreground_exit_code = None
    (tmp_path / "tiny.py").write_text(textwrap.dedent(RECIPE))
    return tmp_path


def launch(*args: str):
    return CliRunner().invoke(app, list(args))


def launch_subprocess(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "from launcher.cli.app import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_help_imports_nothing_heavy(workspace: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from backends.base import Job
        from backends.registry import JobRegistry
        from launcher.cli.app import main
        from launcher.spec import LaunchSpec
        spec = LaunchSpec("r.py", "/tmp/o/e/done-1", "done-1", "e")
        job = Job("local://done-1", "local", spec.run_dir, "r.py", "done-1",
                  extra={"state": "SUCCEEDED"})
        JobRegistry().record(job, spec)
        for argv in (["--help"], ["run", "--help"], ["recipe.py", "--help"], ["jobs", "--help"],
                     ["--version"], ["jobs"], ["jobs", "--json"], ["status", "done-1"],
                     ["status", "local://done", "--json"], ["status", "--help"]):
            try:
                main(argv)
            except SystemExit as exc:
                assert exc.code == 0, (argv, exc.code)
        heavy = [m for m in ("torch", "mlflow", "ray", "submitit") if m in sys.modules]
        assert not heavy, heavy
        print("OK")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "LAUNCHER_HOME": str(workspace / "home")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("OK")
    assert "--max-epochs" in done.stdout and "jobs" in done.stdout


def test_a_query_command_imports_only_its_own_module(workspace: Path) -> None:
    """`launch jobs`/`status` import neither the other commands' modules nor pydantic (Typer's
    conversions) nor what runs write (run_info): each fresh process pays only for its command."""
    code = textwrap.dedent(
        """
        import sys
        from backends.base import Job
        from backends.registry import JobRegistry
        from launcher.spec import LaunchSpec
        spec = LaunchSpec("r.py", "/tmp/o/e/done-1", "done-1", "e")
        JobRegistry().record(Job("local://done-1", "local", spec.run_dir, "r.py", "done-1",
                                 extra={"state": "SUCCEEDED"}), spec)
        from launcher.cli.app import main
        try:
            main(sys.argv[1:])
        except SystemExit as exc:
            assert not exc.code, exc.code
        not_wanted = ("pydantic", "launcher.cli.launch", "launcher.cli.spec_builder",
                      "launcher.cli.runs", "launcher.tracking.run_info", "mlflow", "torch")
        print("imported:", [m for m in not_wanted if m in sys.modules])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "LAUNCHER_HOME": str(workspace / "home"),
           "COLUMNS": "200"}  # fmt: skip
    for argv in (["jobs"], ["status", "done-1"], ["jobs", "--limit", "1", "--json"]):
        done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True,
                              text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "done-1" in done.stdout and "SUCCEEDED" in done.stdout, done.stdout
        assert done.stdout.strip().endswith("imported: []"), (argv, done.stdout)
    # Values that do need converting still go through Typer, its messages included.
    assert launch("jobs", "--limit", "0").exit_code == 0
    bad = launch("jobs", "--limit", "many")
    assert bad.exit_code == 2 and "Invalid value for '--limit'" in bad.output


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["r.py", "--nodes", "2"], ["run", "r.py", "--nodes", "2"]),
        (["--debug", "r.py"], ["run", "--debug", "r.py"]),
        (["jobs"], ["jobs"]),
        (["--debug", "status", "x"], ["--debug", "status", "x"]),
        (["--help"], ["--help"]),
        ([], []),
        (["--install-completion", "bash"], ["--install-completion", "bash"]),
    ],
)
def test_recipe_path_defaults_to_run(argv: list[str], expected: list[str]) -> None:
    assert default_to_run(argv, {"run", "jobs", "status"}) == expected


BAD_INPUTS = [
    (["tiny.py", "--nodes", "0"], "--nodes 0: must be at least 1"),
    (["tiny.py", "--gpus", "99"], "--accelerator cpu --devices 99"),
    (["tiny.py", "--precision", "17"], "--precision 17: choose one of 32, 32-true, 16"),
    (["tiny.py", "--strategy", "deepspeed"], "--strategy deepspeed: choose one of ddp, fsdp"),
    (["tiny.py", "--compile", "yes"], "--compile yes: choose one of model, blocks, off"),
    (["tiny.py", "--set", "lr=abc"], "--set lr=abc: expected a float"),
    (["tiny.py", "--set", "hiden_dim=3"], "unknown key 'hiden_dim'; did you mean 'hidden_dim'?"),
    (["tiny.py", "--set", "lr"], "--set lr: expected KEY=VALUE"),
    (["tiny.py", "--set", "devices=2"], "--set devices: the launcher sets Trainer(devices=...)"),
    (["missing.py"], "recipe 'missing.py' not found"),
    (["tiny.py", "--module", "Nope"], "--module Nope: no Module class of that name"),
    (["tiny.py", "--backend", "k8s"], "--backend k8s: choose one of local, slurm, ray"),
    (["tiny.py", "--accelerator", "tpu"], "--accelerator tpu: choose one of auto, cpu, gpu"),
    (["tiny.py", "--gpus", "2", "--accelerator", "cpu"], "--gpus with --accelerator cpu"),
    (["tiny.py", "--cluster", "nowhere"], "cluster config 'nowhere' not found"),
    (["tiny.py", "--address", "auto"], "--address is the Ray cluster address"),
    (["tiny.py", "--resume", "no/such/ckpt"], "--resume no/such/ckpt: no such checkpoint"),
    (["tiny.py", "--resume", "auto", "--no-resume"], "--resume and --no-resume contradict"),
    (["tiny.py", "--name", "a/b"], "--name 'a/b': use a plain name"),
    (["status", "nope"], "no job 'nope' in the registry"),
    (["resume", "nope"], "no job 'nope' in the registry"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_bad_input_is_exit_2_without_traceback(argv: list[str], message: str) -> None:
    result = launch(*argv)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ")
    assert message in result.output
    assert "Traceback" not in result.output
    assert FakeBackend.submitted == []


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS[:3])
def test_debug_raises_the_user_error(argv: list[str], message: str) -> None:
    result = launch(*argv, "--debug")
    assert isinstance(result.exception, UserError)
    assert message in str(result.exception)


def test_output_dir_not_writable(workspace: Path) -> None:
    (workspace / "a_file").write_text("")
    result = launch("tiny.py", "--output-dir", "a_file/runs", "--backend", "fake")
    assert result.exit_code == 2
    assert "cannot write to the output directory a_file/runs" in result.output
    assert "--output-dir PATH" in result.output


def test_console_script_exit_codes_and_debug_traceback(workspace: Path) -> None:
    plain = launch_subprocess("tiny.py", "--nodes", "0", cwd=workspace)
    assert plain.returncode == 2
    assert plain.stderr.strip() == "error: --nodes 0: must be at least 1"
    debug = launch_subprocess("tiny.py", "--nodes", "0", "--debug", cwd=workspace)
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert "launcher.errors.UserError: --nodes 0" in debug.stderr
    usage = launch_subprocess("tiny.py", "--nodes", "two", cwd=workspace)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_dry_run_prints_the_backend_text_and_writes_nothing(workspace: Path) -> None:
    result = launch(
        "tiny.py", "--backend", "fake", "--dry-run", "--name", "n1", "--max-epochs", "3"
    )
    assert result.exit_code == 0, result.output
    spec_path = workspace / "outputs" / "tiny" / "n1" / "launch.json"
    assert result.output.strip() == f"python -m launcher.worker {spec_path}"
    assert not (workspace / "outputs").exists()  # the plan names the spec; nothing is written
    (spec,) = FakeBackend.planned
    assert spec.max_epochs == 3 and spec.backend == "fake" and spec.recipe.endswith("tiny.py")
    assert FakeBackend.submitted == []
    assert JobRegistry().list() == []


@pytest.mark.parametrize(("flags", "commands"), [([], 1), (["--nodes", "2", "--devices", "1"], 2)])
def test_local_dry_run_prints_worker_commands(workspace: Path, flags: list[str], commands: int):
    result = launch("tiny.py", "--accelerator", "cpu", "--name", "d", "--dry-run", *flags)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    spec_path = str(workspace / "outputs" / "tiny" / "d" / "launch.json")
    assert len(lines) == commands
    assert all("launcher.worker" in line and line.endswith(spec_path) for line in lines)
    assert commands == 1 or all("--nnodes=2" in line for line in lines)
    assert not (workspace / "outputs").exists()


def test_build_spec_resolves_flags(workspace: Path) -> None:
    spec = build_spec(
        LaunchOptions(
            "tiny.py",
            accelerator="cpu",
            devices=2,
            nodes=1,
            overrides=["lr=0.5", "trainer.accumulate_grad_batches=2"],
            experiment="exp",
            seed=7,
            no_resume=True,
            precision="bf16-mixed",
            strategy="fsdp",
            compile="blocks",
        )
    )
    assert spec.devices_per_node == 2 and spec.accelerator == "cpu" and spec.world_size == 2
    assert spec.overrides == {"lr": "0.5", "trainer.accumulate_grad_batches": "2"}
    assert spec.resume == "never" and spec.seed == 7 and spec.precision == "bf16-mixed"
    assert (spec.strategy, spec.compile) == ("fsdp", "blocks")
    kwargs = trainer_arguments(spec, {"strategy": "ddp"}, {})  # the flags win over the recipe's
    assert (kwargs["strategy"], kwargs["compile"]) == ("fsdp", "blocks")
    assert kwargs["launch_settings"]["compile"] == "blocks"
    assert spec.name.startswith("tiny-") and spec.experiment == "exp"
    assert spec.run_dir == str(workspace / "outputs" / "exp" / spec.name)
    assert spec.cluster["backend"] == "local" and spec.cluster_file is None


def test_cluster_config_sets_backend_and_output_dir(workspace: Path) -> None:
    (workspace / "cluster_configs").mkdir()
    (workspace / "cluster_configs" / "mine.yaml").write_text(
        "backend: slurm\noutput_dir: /tmp/should-not-be-used\ntracking_uri: file:./mlruns\n"
        "slurm:\n  partition: debug\n  gpus_per_node: 4\n"
    )
    spec = build_spec(LaunchOptions("tiny.py", cluster="mine", output_dir=str(workspace / "o")))
    assert spec.backend == "slurm" and spec.tracking_uri == "file:./mlruns"
    assert spec.accelerator == "gpu" and spec.devices_per_node == 4
    assert spec.cluster["slurm"]["partition"] == "debug"
    assert spec.cluster_file == str(workspace / "cluster_configs" / "mine.yaml")
    assert spec.run_dir.startswith(str(workspace / "o"))
    ray = build_spec(LaunchOptions("tiny.py", backend="ray", address="ray://h:10001"))
    assert (
        ray.cluster["ray"]["address"] == "ray://h:10001" and ray.cluster["ray"]["max_failures"] == 2
    )


def test_foreground_exit_code_is_mirrored(workspace: Path) -> None:
    FakeBackend.foreground_exit_code = 3
    result = launch("tiny.py", "--backend", "fake", "--name", "fg")
    assert result.exit_code == 3
    assert JobRegistry().get("fg").extra["exit_code"] == 3


def test_submit_then_jobs_status_logs_cancel(workspace: Path) -> None:
    assert "no jobs yet" in launch("jobs").output
    submitted = launch("tiny.py", "--backend", "fake", "--name", "bg", "--set", "hidden_dim=16")
    assert submitted.exit_code == 0, submitted.output
    assert "submitted fake://1 (bg)" in submitted.output
    assert FakeBackend.submitted[0].overrides == {"hidden_dim": "16"}

    listed = launch("jobs")
    assert listed.exit_code == 0
    assert "fake://1" in listed.output and "RUNNING" in listed.output and "bg" in listed.output

    assert "fake://1  RUNNING  bg" in launch("status", "bg").output
    FakeBackend.states["fake://1"] = JobState.FAILED
    assert "FAILED" in launch("status", "1").output
    FakeBackend.states["fake://1"] = JobState.RUNNING  # terminal states are remembered
    assert "FAILED" in launch("status", "fake://1").output

    logs = launch("logs", "bg", "--rank", "2", "--follow")
    assert logs.output == "log of fake://1 rank 2 follow=True\n"
    ended = launch("cancel", "bg")  # it failed above: nothing to cancel, and no error
    assert ended.exit_code == 0 and FakeBackend.cancelled == []
    assert ended.output == "fake://1 (bg) had already ended: FAILED; nothing to cancel\n"

    launch("tiny.py", "--backend", "fake", "--name", "lost")
    FakeBackend.states["fake://2"] = ConnectionError("cluster unreachable")
    listed = launch("jobs")
    assert listed.exit_code == 0 and "UNKNOWN (ConnectionError)" in listed.output
    assert "FAILED" in listed.output  # the other job still shows

    launch("tiny.py", "--backend", "fake", "--name", "live")
    cancelled = launch("cancel", "live")  # returns once the job is gone
    assert cancelled.exit_code == 0 and FakeBackend.cancelled == ["fake://3"]
    assert "cancelled fake://3 (live): CANCELLED" in cancelled.output


@pytest.mark.parametrize(("state", "code"), [(JobState.SUCCEEDED, 0), (JobState.FAILED, 1)])
def test_wait_follows_logs_and_exits_on_the_final_state(state: JobState, code: int) -> None:
    FakeBackend.states["fake://1"] = state
    result = launch("tiny.py", "--backend", "fake", "--name", "w", "--wait")
    assert result.exit_code == code
    assert "log of fake://1 rank 0 follow=True" in result.output
    assert JobRegistry().get("w").extra["state"] == state.value


def test_resume_resubmits_the_same_spec(workspace: Path) -> None:
    launch("tiny.py", "--backend", "fake", "--name", "r1", "--no-resume", "--max-epochs", "4")
    result = launch("resume", "r1")
    assert result.exit_code == 0, result.output
    first, again = FakeBackend.submitted
    assert first.resume == "never" and again.resume == "auto"
    assert again.run_dir == first.run_dir and again.max_epochs == 4
    assert JobRegistry().get("r1").handle == "fake://2"  # the newest job of the run
    by_dir = launch("resume", first.run_dir, "--dry-run")
    assert by_dir.output.strip() == f"python -m launcher.worker {first.spec_path}"


def test_verbose_reaches_the_run_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`launch --verbose ...` is how a person sees the libraries' own lines again: every
    process of the run reads LAUNCHER_VERBOSE (workers inherit the environment)."""
    monkeypatch.delenv("LAUNCHER_VERBOSE", raising=False)
    result = CliRunner().invoke(app, ["--verbose", "jobs", "--json"])
    assert result.exit_code == 0, result.output
    assert os.environ.get("LAUNCHER_VERBOSE") == "1"
