"""Torch threads per process from the allocation (launcher/train/cpu_threads.py).

The rules on their own, then real local runs (`tests/recipes/threads_probe.py` reports each
rank's `torch.get_num_threads()`): torchrun's default of one thread a process with
`--devices 2`, `--threads N`, and torch's default for a lone local process; each recorded in
the run's MLflow params. The SLURM and Ray runs are in tests/backends/test_slurm.py and
test_ray.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.cluster_env import ClusterEnvironment
from launcher.train.cpu_threads import ThreadChoice, apply_threads, choose_threads

REPO = Path(__file__).resolve().parents[2]
PROBE = str(REPO / "tests" / "recipes" / "threads_probe.py")


def slurm(cpus: int | None) -> ClusterEnvironment:
    return ClusterEnvironment(kind="slurm", world_size=2, cpus_per_process=cpus)


@pytest.mark.parametrize(
    ("requested", "environ", "env", "gpu", "expected"),
    [
        (3, {"OMP_NUM_THREADS": "1"}, slurm(4), False, ThreadChoice(3, "--threads")),
        (None, {"OMP_NUM_THREADS": "2"}, slurm(4), False, ThreadChoice(2, "OMP_NUM_THREADS")),
        (None, {}, slurm(4), False, ThreadChoice(4, "SLURM_CPUS_PER_TASK=4")),
        (None, {"OMP_NUM_THREADS": ""}, slurm(1), False, ThreadChoice(1, "SLURM_CPUS_PER_TASK=1")),
        (None, {}, slurm(12), True,
         ThreadChoice(6, "SLURM_CPUS_PER_TASK=12 (half: GPU data loaders)")),
        (None, {}, slurm(1), True, ThreadChoice(1, "SLURM_CPUS_PER_TASK=1 (half: GPU data loaders)")),
        (None, {}, ClusterEnvironment(kind="ray", cpus_per_process=2), False,
         ThreadChoice(2, "num_cpus_per_worker=2")),
    ],
)  # fmt: skip
def test_the_first_rule_that_applies_decides(requested, environ, env, gpu, expected) -> None:
    assert choose_threads(requested, env, gpu, environ) == expected


def test_without_an_allocation_torch_keeps_its_default() -> None:
    import torch

    choice = choose_threads(None, ClusterEnvironment(), gpu=False, environ={})
    assert choice == ThreadChoice(torch.get_num_threads(), "torch default", set_by_us=False)
    environ: dict[str, str] = {}
    apply_threads(choice, environ)
    assert environ == {}  # nothing set: a local process keeps torch's own choice


def test_slurm_cpus_come_from_cpus_per_task_else_the_node_shared_by_its_tasks() -> None:
    base = {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_NUM_NODES": "2"}
    given = ClusterEnvironment.detect({**base, "SLURM_CPUS_PER_TASK": "3"})
    assert given.cpus_per_process == 3
    shared = ClusterEnvironment.detect({**base, "SLURM_CPUS_ON_NODE": "8"})
    assert shared.cpus_per_process == 4  # 8 CPUs, 2 tasks on the node
    assert ClusterEnvironment.detect(base).cpus_per_process is None
    assert ClusterEnvironment.detect({}).cpus_per_process is None  # local: nobody allots


def run_probe(tmp_path: Path, name: str, *flags: str) -> tuple[list[dict], dict[str, str]]:
    """`launch` the probe in a fresh process; (each rank's report, the run's MLflow params)."""
    import mlflow

    environ = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    }
    environ.update(
        LAUNCHER_HOME=str(tmp_path / "home"), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db"
    )
    command = [
        sys.executable,
        "-c",
        "import sys; from launcher.cli import main; sys.exit(main())",
        PROBE,
        "--accelerator",
        "cpu",
        "--output-dir",
        str(tmp_path),
        "--name",
        name,
        *flags,
    ]
    result = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "threads_probe" / name
    reports = [json.loads(p.read_text()) for p in sorted(run_dir.glob("threads_rank*.json"))]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("threads_probe")
    (run,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")
    return reports, run.data.params  # fmt: skip


@pytest.mark.slow
def test_two_local_processes_get_torchruns_one_thread_each_and_the_params_say_so(tmp_path) -> None:
    reports, params = run_probe(tmp_path, "two", "--devices", "2")
    assert reports == [{"threads": 1, "omp": "1"}] * 2  # torchrun sets 1 for nproc > 1
    assert params["launch.threads"] == "1"
    assert params["launch.threads_from"] == "OMP_NUM_THREADS"


@pytest.mark.slow
def test_local_agents_sharing_this_host_get_one_thread_a_process(tmp_path) -> None:
    """--nodes 2 --devices 1: torchrun sets nothing for one process a node, but both share
    this host's cores; the local backend gives its agents torchrun's default."""
    reports, params = run_probe(tmp_path, "nodes", "--nodes", "2", "--devices", "1")
    assert reports == [{"threads": 1, "omp": "1"}] * 2
    assert params["launch.threads"] == "1"


@pytest.mark.slow
def test_the_threads_flag_wins_and_a_lone_process_keeps_torchs_default(tmp_path) -> None:
    reports, params = run_probe(tmp_path, "flag", "--devices", "2", "--threads", "2")
    assert reports == [{"threads": 2, "omp": "2"}] * 2  # over torchrun's OMP_NUM_THREADS=1
    assert (params["launch.threads"], params["launch.threads_from"]) == ("2", "--threads")
    reports, params = run_probe(tmp_path, "lone")
    default = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert reports == [{"threads": int(default), "omp": None}]
    assert (params["launch.threads"], params["launch.threads_from"]) == (default, "torch default")
