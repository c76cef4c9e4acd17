"""The Ray backend against a real local 2-node Ray cluster (2 workers x 1 CPU, gloo).

    python -m pytest tests/test_ray.py -x -q        # starts scripts/ray_cluster.sh itself

One uninterrupted run (`reference`) is shared: the local backend and a run whose worker is
SIGKILLed mid-way must both end with bitwise the same weights.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends.base import JobState
from backends.local import LocalBackend
from backends.ray import RayBackend
from backends.ray_cluster import auth_headers
from backends.ray_driver import WORKER_STATE_DIR
from launcher.cli.app import app
from launcher.errors import UserError
from launcher.spec import LaunchSpec
from tests.resume_harness import (
    assert_bitwise_equal,
    final_state,
    logger_run,
    metric_steps,
    wait_for,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "tests" / "recipes" / "ray_tiny.py")
MAX_STEPS = 40  # ray_tiny's TRAINER


def make_spec(out: Path, name: str, address: str | None, **fields) -> LaunchSpec:
    """A 2-process CPU run of ray_tiny under `out`, tracked in `out/mlflow.db`."""
    ray_settings = {"address": address} if address else {}
    fields = {"nodes": 2, "devices_per_node": 1, "accelerator": "cpu", "backend": "ray", **fields}
    spec = LaunchSpec(recipe=RECIPE, run_dir=str(out / "ray_tiny" / name), name=name,
                      experiment="ray_tiny", tracking_uri=f"sqlite:///{out}/mlflow.db",
                      cluster={"ray": ray_settings}, **fields)  # fmt: skip
    spec.write()
    return spec


def launch(*args: str):
    return CliRunner().invoke(app, list(args))


def mlflow_run_id(spec: LaunchSpec) -> str:
    return logger_run(final_state(spec)["launcher_loggers"]["mlflow"])


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray_runs")


@pytest.fixture(scope="module")
def reference(ray_cluster, out: Path) -> LaunchSpec:
    """An uninterrupted Ray run of ray_tiny (the baseline of the equality tests)."""
    spec = make_spec(out, "reference", ray_cluster.job_api)
    backend = RayBackend()
    job = backend.submit(spec)
    state = backend.wait(job, poll_seconds=0.5)
    assert state == JobState.SUCCEEDED, "".join(backend.logs(job))
    return spec


def test_workers_get_ranks_process_group_and_recipe(ray_cluster, tmp_path: Path) -> None:
    """Plumbing with a stand-in worker: Ray ranks, gloo group, recipe shipped, both nodes."""
    from ray.job_submission import JobSubmissionClient

    spec = make_spec(tmp_path, "probe", ray_cluster.job_api)
    backend = RayBackend(worker="ray_tiny:probe")
    plan = backend.plan(spec)
    job = backend.submit(plan)
    assert job.handle == f"ray://{plan.submission_id}" and job.handle.startswith("ray://probe-")
    # What the job API received is what the dry run shows.
    info = JobSubmissionClient(ray_cluster.job_api, headers=auth_headers()).get_job_info(
        job.native_id
    )
    assert (
        info.entrypoint
        == plan.entrypoint
        == json.loads(plan.render().partition("\n")[2])["entrypoint"]
    )
    assert info.metadata == plan.metadata
    assert info.runtime_env["env_vars"] == plan.runtime_env["env_vars"]
    assert backend.wait(job, poll_seconds=0.5) == JobState.SUCCEEDED, "".join(backend.logs(job))
    reports = [json.loads((Path(spec.run_dir) / f"probe_rank{r}.json").read_text()) for r in (0, 1)]
    for rank, report in enumerate(reports):
        assert report["cluster_env"] == {"kind": "ray", "rank": rank, "world": 2}
        assert report["env"]["RANK"] == str(rank) and report["env"]["WORLD_SIZE"] == "2"
        assert report["env"]["LAUNCHER_CLUSTER"] == "ray"
        assert report["env"]["LAUNCHER_RAY_ATTEMPT"] == "0"
        assert report["backend"] == "gloo" and report["all_reduce"] == 2.0
        assert report["recipe_exists"] and report["recipe"] != RECIPE  # the shipped copy
    # Each node has its own copy of the job's working dir: SPREAD used both nodes.
    assert reports[0]["recipe"] != reports[1]["recipe"]
    assert "probe says hello from rank 0" in "".join(backend.logs(job))


def test_run_matches_local_backend(reference: LaunchSpec, out: Path) -> None:
    local = make_spec(out, "local", None, backend="local")
    assert LocalBackend().submit(local).extra["exit_code"] == 0
    ray_state, local_state = final_state(reference), final_state(local)
    assert ray_state["global_step"] == MAX_STEPS
    assert_bitwise_equal(ray_state["state_dict"], local_state["state_dict"], "model")
    assert_bitwise_equal(
        ray_state["optimizer_states"], local_state["optimizer_states"], "optimizers"
    )


def test_killed_worker_group_restarts_and_resumes_exactly(
    ray_cluster, reference: LaunchSpec, out: Path
) -> None:
    spec = make_spec(out, "killed", ray_cluster.job_api, overrides={"step_sleep": "0.2"})
    backend = RayBackend()
    job = backend.submit(spec)
    manifest = Path(spec.run_dir) / "checkpoints" / "resume" / "manifest.json"
    pid_file = Path(spec.run_dir) / WORKER_STATE_DIR / "rank1.pid"

    def checkpointed_step() -> int:
        try:
            return max(c["step"] for c in json.loads(manifest.read_text())["checkpoints"])
        except (OSError, ValueError, KeyError):
            return 0

    assert wait_for(lambda: checkpointed_step() >= 12, timeout=180), "no checkpoint mid-run"
    assert checkpointed_step() < MAX_STEPS - 8, "the run went too fast to be killed mid-way"
    victim = int(pid_file.read_text())
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    assert wait_for(lambda: pid_file.read_text() != str(victim), timeout=120, interval=0.2)
    recovery = time.monotonic() - killed_at
    print(f"worker group restarted {recovery:.1f} s after SIGKILL of rank 1")
    assert recovery < 60, "recovery waited for a collective timeout"

    assert backend.wait(job, poll_seconds=0.5) == JobState.SUCCEEDED, "".join(backend.logs(job))
    log = "".join(backend.logs(job))
    assert "resumed from" in log
    # Quiet by default: Ray's ~100 lines of report and traceback become one line.
    died = [line for line in log.splitlines() if "died" in line]
    # Ray Train reports the first error it polls: the dead rank, or rank 0's gloo error, which
    # then says it is a consequence (tests/backends/test_ray_logs.py).
    assert len(died) == 1, log
    assert (
        died[0].startswith("[launcher] rank 1 (pid ")
        or died[0].startswith("[launcher] rank 0 (pid ")
        and "stopped because another rank's process died" in died[0]
    ), log
    assert "Ray Train restarts the worker group (restart 1 of 2)" in died[0]
    for noise in ("PreemptionWatcher", "Traceback", "(raylet)", "(TrainController", "\x1b["):
        assert noise not in log, (noise, log)
    starts = Path(spec.run_dir) / WORKER_STATE_DIR / job.native_id
    assert [(starts / f"rank{r}.starts").read_text() for r in (0, 1)] == ["1", "1"]
    killed, baseline = final_state(spec), final_state(reference)
    assert killed["loops"]["fit_loop"]["resumes"] == 1
    assert_bitwise_equal(killed["state_dict"], baseline["state_dict"], "model")
    assert_bitwise_equal(killed["optimizer_states"], baseline["optimizer_states"], "optimizers")
    steps = metric_steps(out, mlflow_run_id(spec), "train_loss")
    assert steps == metric_steps(out, mlflow_run_id(reference), "train_loss")
    assert steps == list(range(MAX_STEPS))  # one value per step: none repeated or lost


def test_status_logs_cancel_through_the_cli(ray_cluster, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAUNCHER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAUNCHER_VERBOSE", "0")  # --verbose sets it to 1; restored after
    submitted = launch(
        "--verbose",  # Ray's own lines stay in the job's log
        "run", RECIPE, "--backend", "ray", "--address", ray_cluster.job_api, "--nodes", "2",
        "--devices", "1", "--accelerator", "cpu", "--output-dir", str(tmp_path), "--name",
        "long", "--max-steps", "100000", "--set", "step_sleep=0.5",
    )  # fmt: skip
    assert submitted.exit_code == 0, submitted.output
    handle = re.search(r"submitted (ray://\S+)", submitted.output).group(1)

    def status() -> str:
        result = launch("status", handle)
        assert result.exit_code == 0, result.output
        return result.output

    assert wait_for(lambda: "RUNNING" in status(), timeout=120, interval=1)
    rank1_log = tmp_path / "ray_tiny" / "long" / "logs" / "rank1.log"
    assert wait_for(rank1_log.exists, timeout=120, interval=1)
    logs = launch("logs", handle)
    assert logs.exit_code == 0 and "Running entrypoint for job" in logs.output, logs.output
    assert wait_for(lambda: "(TrainController pid=" in launch("logs", handle).output, 60, 1)
    assert launch("logs", handle, "--rank", "1").exit_code == 0
    assert wait_for(lambda: _runs(tmp_path), timeout=60, interval=1)  # the MLflow run exists
    cancelled = launch("cancel", handle)  # Ray kills the driver: `launch cancel` ends the run
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    assert wait_for(lambda: "CANCELLED" in status(), timeout=60, interval=1)
    (run,) = _runs(tmp_path)
    assert run.info.status == "KILLED" and run.data.tags["launcher.state"] == "killed"
    assert "launch resume long" in run.data.tags["launcher.end_reason"]
    jobs = json.loads(launch("jobs", "--json").stdout)
    assert [job["state"] for job in jobs if job["handle"] == handle] == ["CANCELLED"]
    listed = launch("runs", "--json", "--output-dir", str(tmp_path))
    assert [row["state"] for row in json.loads(listed.stdout)] == ["CANCELLED"]


def _runs(out: Path) -> list:
    """The MLflow runs of ray_tiny in `out`'s store (none while it does not exist yet)."""
    from mlflow.tracking import MlflowClient

    if not (out / "mlflow.db").exists():
        return []
    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    experiment = client.get_experiment_by_name("ray_tiny")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_dry_run_shows_the_submission_and_submits_nothing(tmp_path: Path) -> None:
    result = launch(
        "run", RECIPE, "--backend", "ray", "--address", "http://127.0.0.1:1", "--nodes", "2",
        "--devices", "1", "--accelerator", "cpu", "--output-dir", str(tmp_path), "--name", "dry",
        "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    header, _, body = result.output.partition("\n")
    assert "dry run: nothing was submitted" in header
    shown = json.loads(body)
    run_dir = tmp_path / "ray_tiny" / "dry"
    assert shown["entrypoint"] == "python -m backends.ray_driver launch.json"
    assert shown["runtime_env"]["working_dir"] == str(run_dir / "ray_job")
    assert shown["runtime_env"]["py_modules"] == [str(REPO / "launcher"), str(REPO / "backends")]
    assert shown["runtime_env"]["env_vars"]["RAY_CHDIR_TO_TRIAL_DIR"] == "0"
    assert shown["scaling_config"] == {
        "num_workers": 2, "use_gpu": False, "resources_per_worker": {"CPU": 1.0},
        "placement_strategy": "SPREAD",
    }  # fmt: skip
    assert shown["failure_config"] == {"max_failures": 2}
    assert not (run_dir / "ray_job").exists()


def test_example_cluster_config_dry_run(tmp_path: Path) -> None:
    result = launch(
        "run", RECIPE, "--cluster", "example_ray", "--nodes", "2", "--gpus", "8",
        "--output-dir", str(tmp_path), "--name", "big", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output.partition("\n")[2])
    assert shown["address"] == "http://ray-head.internal:8265"
    assert shown["scaling_config"] == {
        "num_workers": 16, "use_gpu": True, "resources_per_worker": {"CPU": 8.0, "GPU": 1.0},
        "placement_strategy": "SPREAD",
    }  # fmt: skip
    assert shown["failure_config"] == {"max_failures": 3}
    assert shown["run_dir_on_cluster"] == "/shared/runs/ray_tiny/big"
    assert shown["metadata"]["run_dir"] == "/shared/runs/ray_tiny/big"
    assert shown["runtime_env"]["env_vars"]["NCCL_DEBUG"] == "WARN"
    assert shown["runtime_env"]["env_vars"]["RAY_DEDUP_LOGS"] == "0"
    local = launch("run", RECIPE, "--cluster", "local_ray", "--output-dir", str(tmp_path),
                   "--accelerator", "cpu", "--dry-run")  # fmt: skip
    assert json.loads(local.output.partition("\n")[2])["address"] == "http://127.0.0.1:8275"


def _silent_server() -> tuple[socket.socket, int]:
    """Accepts TCP connections (the kernel does) and never answers: a hung head node."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server, server.getsockname()[1]


@pytest.mark.parametrize("kind", ["refused-http", "refused-ray-client", "refused-gcs", "silent"])
def test_unreachable_address_fails_fast(kind: str, tmp_path: Path) -> None:
    server, port = _silent_server()
    if kind != "silent":
        server.close()  # nothing listens on `port` any more
    address = {"refused-http": f"http://127.0.0.1:{port}", "refused-ray-client":
               f"ray://127.0.0.1:{port}", "refused-gcs": f"127.0.0.1:{port}",
               "silent": f"http://127.0.0.1:{port}"}[kind]  # fmt: skip
    started = time.monotonic()
    result = launch(
        "run", RECIPE, "--backend", "ray", "--address", address, "--accelerator", "cpu",
        "--output-dir", str(tmp_path),
    )  # fmt: skip
    server.close()
    assert time.monotonic() - started < 30
    assert result.exit_code == 2, result.output
    assert "cannot reach" in result.output or "did not answer" in result.output


def test_more_workers_or_gpus_than_the_cluster_has_are_refused(ray_cluster, tmp_path) -> None:
    too_many = make_spec(tmp_path, "too-many", ray_cluster.job_api, devices_per_node=2)
    with pytest.raises(UserError, match=r"cannot hold --nodes 2 x 2 = 4 workers.*room for 2"):
        RayBackend().submit(too_many)
    gpus = make_spec(tmp_path, "gpus", ray_cluster.job_api, accelerator="gpu")
    with pytest.raises(UserError, match=r"'GPU': 1.0.*room for 0"):
        RayBackend().submit(gpus)
    three_nodes = make_spec(tmp_path, "3nodes", ray_cluster.job_api, nodes=3)
    three_nodes.cluster["ray"]["num_cpus_per_worker"] = 0.5
    with pytest.raises(UserError, match=r"--nodes 3: .* has 2 alive"):
        RayBackend().submit(three_nodes)
    assert not (Path(too_many.run_dir) / "ray_job").exists()  # refused before submitting


def test_unknown_ray_config_key_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("backend: ray\nray:\n  adress: http://127.0.0.1:8265\n")
    result = launch("run", RECIPE, "--cluster", str(config), "--output-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown key 'adress'" in result.output and "did you mean 'address'" in result.output
    spec = make_spec(tmp_path, "bad-key", None)
    spec.cluster["ray"] = {"max_failure": 3}
    with pytest.raises(UserError, match=r"unknown key 'max_failure'.*Valid keys: address"):
        RayBackend().plan(spec)


def test_without_an_address_a_local_ray_runs_the_job_and_stops(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "local-ray", None, nodes=1)
    sessions_before = {p.name for p in Path("/tmp").glob("lray*")}
    job = RayBackend(worker="ray_tiny:probe").submit(spec)
    assert job.extra["exit_code"] == 0 and job.extra["state"] == "SUCCEEDED"
    assert RayBackend().status(job) == JobState.SUCCEEDED  # recorded: that Ray is gone
    assert "probe says hello" in "".join(RayBackend().logs(job))
    report = json.loads((Path(spec.run_dir) / "probe_rank0.json").read_text())
    assert report["cluster_env"] == {"kind": "ray", "rank": 0, "world": 1}
    new_dirs = {p.name for p in Path("/tmp").glob("lray*")} - sessions_before
    assert len(new_dirs) == 1  # its temp dir, holding its logs
    head_dir = new_dirs.pop()
    assert not any(
        head_dir in " ".join(p.cmdline()) for p in _processes() if p.status() != "zombie"
    ), "the local Ray outlived its run"


def _processes():
    import psutil

    for proc in psutil.process_iter():
        try:
            proc.cmdline()
            yield proc
        except psutil.Error:
            continue


def test_cancel_of_an_unknown_job_is_a_user_error(ray_cluster) -> None:
    from backends.base import Job

    ghost = Job("ray://no-such-job", "ray", "/tmp", extra={"address": ray_cluster.job_api})
    with pytest.raises(UserError, match="no-such-job"):
        RayBackend().status(ghost)


def test_each_worker_trains_with_its_num_cpus_per_worker(ray_cluster, tmp_path: Path) -> None:
    """Ray sets OMP_NUM_THREADS to the worker's CPUs (1 here); torch alone would take 2."""
    import mlflow

    spec = make_spec(tmp_path, "threads", ray_cluster.job_api)
    spec.recipe = str(REPO / "tests" / "recipes" / "threads_probe.py")
    spec.experiment = "threads_probe"
    spec.cluster["ray"]["num_cpus_per_worker"] = 1
    spec.write()
    backend = RayBackend()
    job = backend.submit(spec)
    assert backend.wait(job, poll_seconds=0.5) == JobState.SUCCEEDED, "".join(backend.logs(job))
    reports = [
        json.loads((Path(spec.run_dir) / f"threads_rank{r}.json").read_text()) for r in (0, 1)
    ]
    assert reports == [{"threads": 1, "omp": "1"}] * 2
    client = mlflow.MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name("threads_probe")
    (run,) = client.search_runs([experiment.experiment_id], "attributes.run_name = 'threads'")
    assert run.data.params["launch.threads"] == "1"
    assert run.data.params["launch.threads_from"] == "OMP_NUM_THREADS"
