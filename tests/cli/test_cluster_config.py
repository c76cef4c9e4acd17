"""Cluster YAML -> typed dataclasses, with loud validation."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from backends.ray_config import RayConfig
from backends.slurm import SlurmConfig
from launcher.cli.cluster_config import (
    ClusterConfig,
    cluster_config_from_dict,
    config_to_dict,
    load_cluster_config,
)
from launcher.common.validate import from_dict
from launcher.errors import UserError

FULL = """
backend: slurm
tracking_uri: http://127.0.0.1:5000
output_dir: /scratch/runs
slurm:
  partition: gpu
  account: ml
  qos: 1                    # YAML reads a number; sbatch takes text
  time_limit_minutes: 90
  mem_gb: 64
  cpus_per_task: 8
  gpus_per_node: 4
  exclusive: true
  setup: ["module load cuda", "source venv/bin/activate"]
  extra_sbatch: {mail-type: END}
  signal_grace_seconds: 120
  max_requeues: 5
ray:
  address: ray://head:10001
  max_failures: 1
  resources_per_worker: {GPU: 1}
  runtime_env: {env_vars: {A: "1"}}
  num_cpus_per_worker: 2
"""


def write(tmp_path: Path, text: str, name: str = "cluster.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(UserError) as info:
        load_cluster_config(write(tmp_path, text))
    return str(info.value)


def test_full_config_is_typed(tmp_path: Path) -> None:
    cfg = load_cluster_config(write(tmp_path, FULL))
    assert cfg.backend == "slurm" and cfg.output_dir == "/scratch/runs"
    assert isinstance(cfg.slurm, SlurmConfig) and isinstance(cfg.ray, RayConfig)
    assert cfg.slurm.qos == "1"
    assert cfg.slurm.exclusive is True and cfg.slurm.gpus_per_node == 4
    assert cfg.slurm.setup[0] == "module load cuda"
    assert cfg.slurm.extra_sbatch == {"mail-type": "END"}
    assert cfg.ray.resources_per_worker == {"GPU": 1.0}
    assert cfg.ray.num_cpus_per_worker == 2.0 and isinstance(cfg.ray.num_cpus_per_worker, float)
    assert cfg.ray.runtime_env == {"env_vars": {"A": "1"}}


def test_defaults(tmp_path: Path) -> None:
    cfg = load_cluster_config(write(tmp_path, "backend: slurm\nslurm: {}\n"))
    assert cfg.slurm.time_limit_minutes == 60
    assert cfg.slurm.signal_grace_seconds == 60 and cfg.slurm.max_requeues == 3
    assert cfg.ray is None and cfg.tracking_uri is None
    assert load_cluster_config(write(tmp_path, "")) == ClusterConfig()
    assert RayConfig().max_failures == 2 and RayConfig().num_cpus_per_worker == 1


def test_round_trip_through_json(tmp_path: Path) -> None:
    cfg = load_cluster_config(write(tmp_path, FULL))
    data = json.loads(json.dumps(config_to_dict(cfg)))  # what launch.json holds
    assert cluster_config_from_dict(data) == cfg


def test_unknown_key_lists_valid_keys(tmp_path: Path) -> None:
    message = load_error(tmp_path, "backend: slurm\nslurm:\n  partiton: gpu\n")
    assert "unknown key 'partiton' in slurm (did you mean 'partition'?)" in message
    assert "Valid keys: partition, account, qos, constraint, time_limit_minutes" in message
    top = load_error(tmp_path, "backnd: slurm\n")
    assert "Valid keys: backend, tracking_uri, output_dir, slurm, ray" in top


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slurm:\n  time_limit_minutes: abc\n", "slurm.time_limit_minutes: expected an int, got 'abc'"),
        ("slurm:\n  time_limit_minutes: true\n", "slurm.time_limit_minutes: expected an int, got True"),
        ("slurm:\n  exclusive: 3\n", "slurm.exclusive: expected true or false, got 3"),
        ("slurm:\n  setup: module load cuda\n", "slurm.setup: expected a list, got 'module load cuda'"),
        ("slurm:\n  setup: [[1]]\n", "slurm.setup[0]: expected a string"),
        ("slurm:\n  mem_gb: lots\n", "slurm.mem_gb: expected an int, got 'lots'"),
        ("ray:\n  resources_per_worker: {GPU: x}\n", "ray.resources_per_worker.GPU: expected a number"),
        ("ray: [1, 2]\n", "ray: expected a mapping"),
        ("backend: k8s\n", "unknown backend 'k8s'; choose one of: local, slurm, ray"),
        ("- just\n- a list\n", "expected a mapping of settings, got list"),
    ],
)  # fmt: skip
def test_wrong_types_are_explained(tmp_path: Path, text: str, expected: str) -> None:
    message = load_error(tmp_path, text)
    assert expected in message
    assert message.startswith(str(tmp_path / "cluster.yaml"))


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "backend: slurm\nslurm:\n  partition: gpu\n   qos: [x\n")
    assert message.startswith(f"{tmp_path / 'cluster.yaml'}:4: invalid YAML")


def test_missing_file_and_unknown_name(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(UserError, match="no file at"):
        load_cluster_config(str(tmp_path / "nope.yaml"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluster_configs").mkdir()
    (tmp_path / "cluster_configs" / "mine.yaml").write_text("backend: ray\n")
    with pytest.raises(UserError, match="cluster config 'nope' not found.*Available:.*mine"):
        load_cluster_config("nope")


def test_bare_name_resolves_in_the_repository_from_any_cwd(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no cluster_configs/ here: the repository's are found
    assert load_cluster_config("example_slurm").slurm.partition == "gpu"


def test_bare_name_resolves_in_cwd_cluster_configs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluster_configs").mkdir()
    (tmp_path / "cluster_configs" / "mine.yaml").write_text("backend: ray\nray: {}\n")
    assert load_cluster_config("mine").backend == "ray"


def test_from_dict_is_generic() -> None:
    assert from_dict(RayConfig, {"address": "auto"}, "ray").address == "auto"
    with pytest.raises(UserError, match="ray.max_failures: expected an int, got 1.5"):
        from_dict(RayConfig, {"max_failures": 1.5}, "ray")
