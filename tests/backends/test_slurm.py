"""The SLURM backend, against a real 2-node SLURM cluster on this host (tests/fixtures_slurm.py).

    python -m pytest tests/test_slurm.py -x -q            # starts the cluster (root) first

The first tests need no cluster (dry-run golden file, state mapping, preemption/time-limit
classification). The rest submit real jobs: a gloo all-reduce across the two nodes, a
2-node training run equal to the local backend's, a real preemption by a `high`-partition job
and a time limit reached with `--signal` (each: checkpoint, requeue, resume, bitwise equal
weights, one continuous MLflow run), and `launch jobs/status/logs/cancel/resume`.
Regenerate the golden file with `UPDATE_GOLDEN=1`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from backends.base import Job, JobState
from backends.registry import JobRegistry
from backends.scontrol import job_state, parse_fields
from backends.slurm import SLURM_STATES, SlurmBackend
from backends.slurm_task import interruption_reason
from launcher.cli.app import app
from launcher.cli.cluster_config import load_cluster_config
from launcher.errors import UserError
from launcher.spec import LaunchSpec
from launcher.train.checkpoint_store import CheckpointManager

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "tests" / "recipes" / "slurm_tiny.py")
GOLDEN = REPO / "tests" / "golden" / "slurm_dry_run.sbatch"
TRAIN = ["--nodes", "2", "--devices", "1", "--accelerator", "cpu", "--max-steps", "40"]


def launch(*args: str) -> object:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def wait_for(predicate, timeout: float, what: str, poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def final_weights(run_dir: str) -> dict[str, torch.Tensor]:
    _, state = CheckpointManager(str(Path(run_dir) / "checkpoints" / "resume")).load_latest()
    assert state["loops"]["fit_loop"]["finished"] and state["global_step"] == 40
    return state["state_dict"]


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


# -- no cluster needed ------------------------------------------------------------------------


def test_dry_run_prints_the_exact_sbatch_script_and_submits_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCHER_HOME", str(tmp_path / "home"))
    result = launch(
        "run", RECIPE, "--cluster", "example_slurm", "--nodes", "2", "--gpus", "8",
        "--output-dir", str(tmp_path), "--name", "golden", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = result.stdout.replace(str(tmp_path), "/RUNS").replace(sys.executable, "PYTHON")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    for flag in ("--signal=USR2@120", "--requeue", "--open-mode=append", "--nodes=2",
                 "--ntasks-per-node=8", "--gpus-per-node=8", "module load cuda"):  # fmt: skip
        assert flag in text
    assert not (tmp_path / "slurm_tiny" / "golden" / "slurm").exists()  # nothing submitted
    assert JobRegistry().list() == []


def test_the_plan_is_the_golden_script_without_slurm_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM tools: planning needs none
    run_dir = tmp_path / "slurm_tiny" / "golden"
    slurm = dataclasses.asdict(load_cluster_config("example_slurm").slurm)
    spec = LaunchSpec(recipe=RECIPE, run_dir=str(run_dir), name="golden", experiment="slurm_tiny",
                      backend="slurm", nodes=2, devices_per_node=8, accelerator="gpu",
                      cluster={"slurm": slurm})  # fmt: skip
    plan = SlurmBackend().plan(spec)
    text = plan.render().replace(str(tmp_path), "/RUNS").replace(sys.executable, "PYTHON")
    assert text == GOLDEN.read_text()
    assert plan.folder == run_dir / "slurm" and not run_dir.exists()


def test_a_misspelled_slurm_option_lists_the_valid_ones(tmp_path):
    spec = LaunchSpec(recipe=RECIPE, run_dir=str(tmp_path), name="typo", experiment="slurm_tiny",
                      backend="slurm", cluster={"slurm": {"partiton": "low"}})  # fmt: skip
    with pytest.raises(UserError) as error:
        SlurmBackend().plan(spec)
    assert "unknown key 'partiton' in slurm (did you mean 'partition'?)" in str(error.value)
    assert "Valid keys: partition, account, qos, constraint, time_limit_minutes" in str(error.value)


def test_extra_sbatch_options_replace_ours_whatever_their_spelling(tmp_path):
    extra = {"job_name": "mine", "time": "10", "mail-type": "END"}
    spec = LaunchSpec(recipe=RECIPE, run_dir=str(tmp_path), name="ours", experiment="slurm_tiny",
                      backend="slurm", cluster={"slurm": {"extra_sbatch": extra}})  # fmt: skip
    flags = [line for line in SlurmBackend().plan(spec).render().splitlines() if "#SBATCH" in line]
    assert [f for f in flags if "--job-name" in f] == ["#SBATCH --job-name=mine"]
    assert [f for f in flags if "--time" in f] == ["#SBATCH --time=10"]
    assert "#SBATCH --mail-type=END" in flags


def test_scontrol_records_become_job_states():
    info = parse_fields("JobId=42 JobName=a=b JobState=PENDING Reason=BeginTime Restarts=1")
    assert info["JobId"] == "42" and info["Reason"] == "BeginTime"
    assert job_state(info) == JobState.REQUEUED  # pending again after a requeue
    assert job_state({**info, "Restarts": "0"}) == JobState.PENDING
    assert job_state({"JobState": "RUNNING"}) == JobState.RUNNING
    assert job_state({"JobState": "SOMETHING_NEW"}) == job_state({}) == JobState.UNKNOWN


def test_every_slurm_state_maps_onto_one_job_state():
    # The job states of `man squeue` (SLURM 22.05).
    documented = (
        "BOOT_FAIL CANCELLED COMPLETED CONFIGURING COMPLETING DEADLINE FAILED NODE_FAIL "
        "OUT_OF_MEMORY PENDING PREEMPTED RUNNING RESV_DEL_HOLD REQUEUE_FED REQUEUE_HOLD "
        "REQUEUED RESIZING REVOKED SIGNALING SPECIAL_EXIT STAGE_OUT STOPPED SUSPENDED TIMEOUT"
    ).split()
    assert sorted(SLURM_STATES) == sorted(documented)
    assert all(isinstance(state, JobState) for state in SLURM_STATES.values())
    assert SLURM_STATES["COMPLETED"] == JobState.SUCCEEDED
    assert SLURM_STATES["TIMEOUT"] == JobState.TIMEOUT
    for alive in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED"):
        assert not SLURM_STATES[alive].is_terminal(), alive
    for failed in ("FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"):
        assert SLURM_STATES[failed] == JobState.FAILED, failed


def test_preemption_and_time_limit_are_told_apart():
    base = {"JobState": "RUNNING", "StartTime": "2030-01-01T10:00:00", "TimeLimit": "01:00:00"}
    preempted = {**base, "PreemptTime": "2030-01-01T10:05:00", "RunTime": "00:05:00"}
    assert interruption_reason(preempted, grace_s=60).startswith("preempted")
    # A PreemptTime from before this start belongs to an earlier, already requeued run.
    timed = {**base, "PreemptTime": "2030-01-01T09:00:00", "RunTime": "00:59:00"}
    assert interruption_reason(timed, grace_s=60).startswith("time limit approaching")
    manual = {**base, "PreemptTime": "None", "RunTime": "00:10:00"}
    assert interruption_reason(manual, grace_s=60).startswith("signalled")
    ending = {**manual, "JobState": "COMPLETING"}
    assert interruption_reason(ending, grace_s=60).startswith("ending")


def test_missing_sbatch_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM tools on PATH
    monkeypatch.setenv("LAUNCHER_HOME", str(tmp_path / "home"))
    result = launch(RECIPE, "--cluster", "local_slurm", "--output-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "sbatch not found" in result.stderr and "slurm_cluster.sh start" in result.stderr


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("backend: slurm\nslurm:\n  partiton: low\n", "unknown key 'partiton'"),
        ("backend: slurm\nslurm:\n  max_requeues: many\n", "slurm.max_requeues: expected an int"),
    ],
)
def test_bad_cluster_config_is_a_user_error(tmp_path, yaml_text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    result = launch(RECIPE, "--cluster", str(config), "--output-dir", str(tmp_path))
    assert result.exit_code == 2 and message in result.stderr


def test_missing_cluster_config_is_a_user_error(tmp_path):
    result = launch(RECIPE, "--cluster", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "not found" in result.stderr


# -- against the real cluster -----------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(slurm_cluster, tmp_path_factory):
    """Output dir and job registry shared by this module's runs; MLflow in a local store."""
    out = tmp_path_factory.mktemp("slurm_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAUNCHER_HOME", str(out / "home"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield out


def submit_slow(runs: Path, name: str, step_sleep: float = 0.3) -> tuple[Job, Path]:
    """Submit a run whose steps take `step_sleep` s while the returned file exists, and wait
    until it is training (its first checkpoint is written); remove the file to speed it up."""
    slow = runs / f"{name}.slow"
    slow.touch()
    job = submit(runs, name, "--set", f"step_sleep={step_sleep}", "--set", f"slow_while={slow}")
    manifest = Path(job.run_dir) / "checkpoints" / "resume" / "manifest.json"
    wait_for(manifest.exists, 90, f"{name} to start training")
    return job, slow


def submit(runs: Path, name: str, *extra: str) -> Job:
    result = launch(RECIPE, "--cluster", "local_slurm", *TRAIN, "--output-dir", str(runs),
                    "--name", name, *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    return JobRegistry().get(name)


@pytest.fixture(scope="module")
def uninterrupted(runs) -> dict[str, torch.Tensor]:
    """A 2-node x 1-task run submitted with `launch ... --wait`, never interrupted."""
    result = launch(RECIPE, "--cluster", "local_slurm", *TRAIN, "--output-dir", str(runs),
                    "--name", "uninterrupted", "--wait")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert JobRegistry().get("uninterrupted").extra["state"] == "SUCCEEDED"
    return final_weights(str(runs / "slurm_tiny" / "uninterrupted"))


def mlflow_run(runs: Path, name: str):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{runs}/mlflow.db")
    found = client.search_runs(
        [client.get_experiment_by_name("slurm_tiny").experiment_id],
        filter_string=f"attributes.run_name = '{name}'",
    )
    assert len(found) == 1, f"expected one MLflow run named {name}, got {len(found)}"
    steps = [m.step for m in client.get_metric_history(found[0].info.run_id, "train_loss")]
    return found[0], steps


def mlflow_runs(runs: Path, name: str) -> list:
    """The MLflow runs named `name` (none while the store does not exist yet)."""
    import mlflow

    if not (runs / "mlflow.db").exists():
        return []
    client = mlflow.MlflowClient(f"sqlite:///{runs}/mlflow.db")
    experiment = client.get_experiment_by_name("slurm_tiny")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")


def run_states(runs: Path) -> dict[str, str]:
    """name -> state, as `launch runs --json` says it."""
    listed = launch("runs", "--json", "--output-dir", str(runs))
    assert listed.exit_code == 0, listed.output
    return {row["name"]: row["state"] for row in json.loads(listed.stdout)}


@pytest.mark.slurm
@pytest.mark.slow
def test_the_submitted_script_is_the_dry_run(runs):
    args = (RECIPE, "--cluster", "local_slurm", *TRAIN, "--output-dir", str(runs))
    dry = launch(*args, "--name", "planned", "--dry-run")
    assert dry.exit_code == 0, dry.output
    job = submit(runs, "planned")
    sent = Path(job.extra["folder"]) / f"{job.native_id}_submission.sh"
    assert sent.read_text() == dry.stdout  # byte for byte what sbatch received
    assert launch("cancel", "planned").exit_code == 0
    assert SlurmBackend().wait(job, poll_seconds=0.5) == JobState.CANCELLED


@pytest.mark.slurm
@pytest.mark.slow
def test_submitit_gloo_all_reduce_across_two_nodes(slurm_cluster, tmp_path):
    import submitit

    executor = submitit.AutoExecutor(folder=tmp_path)
    executor.update_parameters(nodes=2, tasks_per_node=1, timeout_min=2, slurm_partition="low")
    job = executor.submit(_all_reduce)
    assert sorted(job.results()) == [(3.0, "n1"), (3.0, "n2")]


def _all_reduce() -> tuple[float, str]:
    import torch.distributed as dist

    from launcher.cluster_env import ClusterEnvironment

    env = ClusterEnvironment.detect()
    dist.init_process_group(
        "gloo", init_method=f"tcp://{env.main_address}:{env.main_port}",
        rank=env.global_rank, world_size=env.world_size,
    )  # fmt: skip
    value = torch.tensor([float(env.global_rank + 1)])
    dist.all_reduce(value)
    dist.destroy_process_group()
    return value.item(), os.environ["SLURMD_NODENAME"]


@pytest.mark.slurm
@pytest.mark.slow
def test_two_node_training_equals_the_local_backend(runs, uninterrupted):
    result = launch(RECIPE, "--backend", "local", *TRAIN, "--output-dir", str(runs),
                    "--name", "local-reference")  # fmt: skip
    assert result.exit_code == 0, result.output
    local = final_weights(str(runs / "slurm_tiny" / "local-reference"))
    for key in local:
        torch.testing.assert_close(uninterrupted[key], local[key], rtol=0, atol=1e-6)


@pytest.mark.slurm
@pytest.mark.slow
def test_preemption_checkpoints_requeues_and_resumes_bitwise(runs, uninterrupted):
    job, slow = submit_slow(runs, "preempted")
    high = subprocess.run(
        ["sbatch", "--partition=high", "--exclusive", "--nodes=2", "--output=/dev/null",
         "--wrap", "sleep 1"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "Submitted" in high.stdout
    backend = SlurmBackend()
    wait_for(lambda: backend.status(job) == JobState.REQUEUED, 60, "the requeue")
    slow.unlink()
    assert backend.wait(job, poll_seconds=1) == JobState.SUCCEEDED
    log = "".join(backend.logs(job))
    assert "received SIGUSR2" in log and "preempted at" in log and "resumed from" in log
    assert_bitwise_equal(final_weights(job.run_dir), uninterrupted)
    run, steps = mlflow_run(runs, "preempted")
    assert steps == list(range(40))  # one continuous, duplicate-free step axis (Lightning's)
    assert run.data.tags["launcher.requeue_count"] == "1"
    assert run.data.tags["launcher.job_id"] == job.handle  # the handle people type
    # 2 nodes: the second node's system metrics reach MLflow through the shared run dir.
    assert (
        "system/node1/cpu_percent" in run.data.metrics and "system/cpu_percent" in run.data.metrics
    )


@pytest.mark.slurm
@pytest.mark.slow
def test_time_limit_signal_checkpoints_requeues_and_resumes_bitwise(runs, uninterrupted):
    job, slow = submit_slow(runs, "timed", step_sleep=1.3)  # SLURM's signal can't miss
    # One minute left with a 30 s signal grace: SLURM's next time-limit check (every 30 s)
    # sends USR2, while ~40 s of steps are left.
    subprocess.run(["scontrol", "update", f"JobId={job.native_id}", "TimeLimit=1"], check=True)
    backend = SlurmBackend()
    wait_for(lambda: backend.status(job) == JobState.REQUEUED, 75, "the requeue", poll=0.1)
    # Give the requeued job its time back so the resumed run is not signalled again.
    subprocess.run(["scontrol", "update", f"JobId={job.native_id}", "TimeLimit=5"], check=True)
    slow.unlink()
    assert backend.wait(job, poll_seconds=1) == JobState.SUCCEEDED
    log = "".join(backend.logs(job))
    assert "received SIGUSR2" in log and "time limit approaching" in log
    assert_bitwise_equal(final_weights(job.run_dir), uninterrupted)
    run, steps = mlflow_run(runs, "timed")
    assert steps == list(range(40))
    assert run.data.tags["launcher.requeue_count"] == "1"


@pytest.mark.slurm
@pytest.mark.slow
def test_cli_jobs_status_logs_cancel_resume(runs, uninterrupted):
    job, slow = submit_slow(runs, "cancelled")
    status = launch("status", "cancelled")
    assert status.exit_code == 0 and f"{job.handle}  RUNNING" in status.stdout
    logs = launch("logs", "cancelled")
    assert logs.exit_code == 0 and f"job_id={job.native_id}" in logs.stdout
    assert launch("logs", "cancelled", "--rank", "2").exit_code == 2  # ranks are 0 and 1
    wait_for(lambda: mlflow_runs(runs, "cancelled"), 60, "the MLflow run")
    cancelled = launch("cancel", "cancelled")  # waits until the job is gone
    assert cancelled.exit_code == 0 and "CANCELLED" in cancelled.stdout, cancelled.output
    backend = SlurmBackend()
    assert backend.wait(job, poll_seconds=0.5) == JobState.CANCELLED
    slow.unlink()
    assert "CANCELLED" in launch("jobs").stdout
    # The run says so too, in the same words: KILLED in MLflow, CANCELLED in `launch runs`.
    run, _ = mlflow_run(runs, "cancelled")
    assert run.info.status == "KILLED" and run.data.tags["launcher.state"] == "killed"
    assert "launch resume cancelled" in run.data.tags["launcher.end_reason"]
    assert run_states(runs)["cancelled"] == "CANCELLED"
    again = launch("cancel", "cancelled")
    assert again.exit_code == 0 and "already ended" in again.stdout

    resumed = launch("resume", "cancelled", "--wait")  # a new job, same run dir
    assert resumed.exit_code == 0, resumed.output
    new = JobRegistry().get("cancelled")
    assert new.handle != job.handle and new.run_dir == job.run_dir
    assert "resumed from" in resumed.stdout
    assert f"{new.handle}  SUCCEEDED" in launch("status", new.handle).stdout
    assert_bitwise_equal(final_weights(new.run_dir), uninterrupted)
    finished, _ = mlflow_run(runs, "cancelled")  # the same run, flipped back and finished
    assert finished.info.run_id == run.info.run_id and finished.info.status == "FINISHED"


@pytest.mark.slurm
@pytest.mark.slow
def test_a_spent_requeue_budget_ends_the_run_failed_saying_how_to_resume(runs, tmp_path):
    config = tmp_path / "no_requeues.yaml"
    config.write_text(
        (REPO / "cluster_configs" / "local_slurm.yaml").read_text().replace(
            "max_requeues: 3", "max_requeues: 0"
        )
    )  # fmt: skip
    slow = runs / "budget.slow"
    slow.touch()
    result = launch(RECIPE, "--cluster", str(config), *TRAIN, "--output-dir", str(runs),
                    "--name", "budget", "--set", "step_sleep=0.3", "--set", f"slow_while={slow}")  # fmt: skip
    assert result.exit_code == 0, result.output
    job = JobRegistry().get("budget")
    manifest = Path(job.run_dir) / "checkpoints" / "resume" / "manifest.json"
    wait_for(manifest.exists, 90, "budget to start training")
    wait_for(lambda: mlflow_runs(runs, "budget"), 60, "the MLflow run")
    # What a preemption or the time limit sends; with max_requeues=0 no requeue is left.
    subprocess.run(["scancel", "--signal=USR2", job.native_id], check=True)
    backend = SlurmBackend()
    assert backend.wait(job, poll_seconds=0.5) == JobState.FAILED
    slow.unlink()
    log = "".join(backend.logs(job))
    assert "requeue budget spent" in log and "launch resume budget" in log, log[-3000:]
    run, _ = mlflow_run(runs, "budget")
    assert run.info.status == "FAILED" and run.data.tags["launcher.state"] == "failed"
    reason = run.data.tags["launcher.end_reason"]
    assert "requeue budget spent" in reason and "max_requeues=0" in reason, reason
    assert "resume with: launch resume budget" in reason
    assert run_states(runs)["budget"] == "FAILED"
    assert f"{job.handle}  FAILED" in launch("status", "budget").stdout


@pytest.mark.slurm
@pytest.mark.slow
def test_bad_partition_and_too_many_nodes_are_user_errors(runs):
    config = runs / "nopart.yaml"
    config.write_text("backend: slurm\nslurm:\n  partition: nope\n")
    before = sorted(runs.rglob("*"))
    result = launch(RECIPE, "--cluster", str(config), "--output-dir", str(runs))
    assert result.exit_code == 2
    assert "partition 'nope' does not exist" in result.stderr and "low (default)" in result.stderr
    result = launch(RECIPE, "--cluster", "local_slurm", "--nodes", "3", "--output-dir", str(runs))
    assert result.exit_code == 2 and "--nodes 3 is more than partition 'low' has (2" in (
        result.stderr
    )
    # Per node: 3 tasks on 2-CPU nodes would pend forever (Reason=PartitionConfig); GPUs on
    # a cluster without GRES would print sbatch's raw error twice.
    result = launch(RECIPE, "--cluster", "local_slurm", "--devices", "3", "--output-dir", str(runs))
    assert result.exit_code == 2, result.output
    assert "3 CPUs (3 tasks x 1 cpus_per_task)" in result.stderr
    assert "largest have 2 CPUs" in result.stderr
    result = launch(RECIPE, "--cluster", "local_slurm", "--gpus", "1", "--output-dir", str(runs))
    assert result.exit_code == 2, result.output
    assert "has no GPUs" in result.stderr and "--accelerator cpu" in result.stderr
    assert result.stderr.count("error") == 1
    assert sorted(runs.rglob("*")) == before  # refused: no run dir, no sbatch folder, no pickle


@pytest.mark.parametrize(
    ("nodes", "want", "directives", "problem"),
    [
        ([{"Partitions": "low", "CPUTot": "2"}] * 2, 2, {"ntasks-per-node": 2}, None),
        ([{"Partitions": "low", "CPUTot": "2"}], 1, {"ntasks-per-node": 3}, "3 CPUs (3 tasks"),
        ([{"Partitions": "low", "CPUTot": "8"}], 1,
         {"ntasks-per-node": 2, "cpus-per-task": 4, "gpus-per-node": 2}, "has no GPUs"),
        ([{"Partitions": "low,high", "CPUTot": "8", "Gres": "gpu:a100:4(S:0-1)"}], 1,
         {"ntasks-per-node": 4, "gpus-per-node": 4}, None),
        ([{"Partitions": "gpu", "CPUTot": "64", "Gres": "gpu:8"},
          {"Partitions": "gpu", "CPUTot": "64", "Gres": "gpu:4"}], 2,
         {"ntasks-per-node": 8, "gpus-per-node": 8}, "1 node(s) of partition"),
        ([{"Partitions": "other", "CPUTot": "1"}], 1, {"ntasks-per-node": 9}, None),
    ],
)  # fmt: skip
def test_capacity_problem_reads_cpus_and_gpus_per_node(nodes, want, directives, problem):
    from backends.slurm import capacity_problem

    found = capacity_problem("low" if nodes[0]["Partitions"] != "gpu" else "gpu", nodes, want,
                             directives)  # fmt: skip
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


@pytest.mark.parametrize("verbose", [False, True])
def test_submitit_signal_bypass_lines_are_dropped_unless_verbose(monkeypatch, verbose):
    """submitit logs "Bypassing signal SIGCONT" twice on every normal requeue; the SLURM log
    keeps its other lines."""
    import logging

    from backends.slurm_task import quiet_submitit

    if verbose:
        monkeypatch.setenv("LAUNCHER_VERBOSE", "1")
    else:
        monkeypatch.delenv("LAUNCHER_VERBOSE", raising=False)
    logger = logging.getLogger("submitit")
    kept_filters = list(logger.filters)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        quiet_submitit()
        logger.warning("Bypassing signal SIGCONT")
        logger.warning("Job completed successfully")
    finally:
        logger.removeHandler(handler)
        logger.filters[:] = kept_filters
    assert seen == (["Bypassing signal SIGCONT"] if verbose else []) + [
        "Job completed successfully"
    ]


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.parametrize("cpus_per_task", [1, 2])
def test_each_task_trains_with_the_cpus_slurm_gave_it(runs, cpus_per_task):
    """Without the rule torch starts a thread per core of the node (2 here) in every task."""
    import mlflow
    import yaml

    config = load_cluster_config("local_slurm")
    cluster = runs / f"cpus{cpus_per_task}.yaml"
    slurm = {**dataclasses.asdict(config.slurm), "cpus_per_task": cpus_per_task}
    cluster.write_text(yaml.safe_dump({"backend": "slurm", "slurm": slurm}))
    name = f"threads-{cpus_per_task}"
    probe = str(REPO / "tests" / "recipes" / "threads_probe.py")
    result = launch(probe, "--cluster", str(cluster), "--nodes", "2", "--devices", "1",
                    "--accelerator", "cpu", "--output-dir", str(runs), "--name", name, "--wait")  # fmt: skip
    assert result.exit_code == 0, result.output
    run_dir = runs / "threads_probe" / name
    reports = [json.loads((run_dir / f"threads_rank{r}.json").read_text()) for r in (0, 1)]
    assert reports == [{"threads": cpus_per_task, "omp": str(cpus_per_task)}] * 2
    client = mlflow.MlflowClient(f"sqlite:///{runs}/mlflow.db")
    experiment = client.get_experiment_by_name("threads_probe")
    (run,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")
    assert run.data.params["launch.threads"] == str(cpus_per_task)
    assert run.data.params["launch.threads_from"] == f"SLURM_CPUS_PER_TASK={cpus_per_task}"


def test_following_the_log_asks_slurm_seldom_and_ends_on_the_outcome(tmp_path, monkeypatch):
    """`launch --wait` reads the log every 0.5 s but runs `scontrol` at most every 5 s: each
    call takes CPU from the job's own tasks on a shared host (SLURM ran at 0.89x local)."""
    import threading

    import backends.slurm as slurm
    from backends.slurm_task import write_outcome

    monkeypatch.setattr(slurm, "_FOLLOW_POLL_S", 0.02)
    monkeypatch.setattr(slurm, "_STATE_POLL_S", 0.5)
    folder = tmp_path / "slurm"
    folder.mkdir()
    (folder / "42_0_log.out").write_text("step 1\n")
    job = Job("slurm://42", "slurm", str(tmp_path), "r.py", "r", extra={"folder": str(folder)})
    asked = []

    def status(self, job):
        asked.append(time.monotonic())
        done = (folder / "42_outcome.json").is_file()
        return JobState.SUCCEEDED if done else JobState.RUNNING

    monkeypatch.setattr(SlurmBackend, "status", status)
    ending = threading.Timer(1.2, lambda: write_outcome(folder, "42", "SUCCEEDED"))
    ending.start()
    started = time.monotonic()
    lines = list(SlurmBackend().logs(job, follow=True))
    took = time.monotonic() - started
    assert lines == ["step 1\n"]
    assert 1.2 <= took < 1.5, took  # the outcome ends the follow at once, not 5 s later
    assert 3 <= len(asked) <= 5, len(asked)  # 0, 0.5, 1.0 and the outcome: not every 20 ms
