"""A real local 2-node Ray cluster (2 x 1 CPU, all on 127.0.0.1) for the `ray` tests.

    def test_something(ray_cluster):
        spec.cluster = {"ray": {"address": ray_cluster.job_api}}
        RayBackend().submit(spec)

Started once per test session by `scripts/ray_cluster.sh start` (10-20 s) with token auth,
and stopped at the end by the session ids it recorded. A cluster already running on the same
ports is reused and left running. The session's environment gets `RAY_AUTH_MODE` and
`RAY_AUTH_TOKEN_PATH`, so every client in the tests (and `launch` subprocesses) has the token.
Without Ray the tests skip, except under `CI=true`, where they must run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ray_cluster.sh"
CLIENT_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")


@dataclass(frozen=True)
class LocalRayCluster:
    """Addresses of the running test cluster."""

    gcs_address: str  # for ray.init(address=..., _node_ip_address="127.0.0.1")
    job_api: str  # the job API (dashboard), for JobSubmissionClient and --address
    num_nodes: int
    cpus_per_node: int


def _script(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=240
    )


def _printed_env(output: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in output.splitlines())
    return {key: value for key, sep, value in pairs if sep and key.isupper()}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """Start the 2-node cluster for the session (or reuse a running one) and stop it after."""
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("ray is not installed, and CI=true requires the Ray tests to run")
        pytest.skip("ray is not installed (pip install 'ray[default,train]')")
    env = {
        **{k: v for k, v in os.environ.items() if k not in (*CLIENT_ENV, "RAY_AUTH_TOKEN")},
        "RAY_HEAD_PORT": os.environ.get("RAY_HEAD_PORT", "6390"),
        "RAY_DASHBOARD_PORT": os.environ.get("RAY_DASHBOARD_PORT", "8275"),
        "RAY_NUM_NODES": "2",
        "RAY_CPUS_PER_NODE": "1",
    }
    running = _script("status", env)
    already_running = running.returncode == 0
    if not already_running:
        running = _script("start", env)
        if running.returncode != 0:
            pytest.fail(f"could not start the Ray cluster:\n{running.stdout}\n{running.stderr}")
    printed = _printed_env(running.stdout)
    saved = {key: os.environ.get(key) for key in (*CLIENT_ENV, "RAY_AUTH_TOKEN")}
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update({key: printed[key] for key in CLIENT_ENV if key in printed})
    try:
        yield LocalRayCluster(
            gcs_address=printed["RAY_ADDRESS"],
            job_api=printed["RAY_JOB_API"],
            num_nodes=2,
            cpus_per_node=1,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if not already_running:
            _script("stop", env)
