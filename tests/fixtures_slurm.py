"""The `slurm_cluster` fixture: a real 2-node SLURM cluster on this host for the whole session.

    def test_x(slurm_cluster): ...   # nodes n1, n2; partitions low (default) and high

It runs `scripts/slurm_cluster.sh start` (installs slurm-wlm and munge with apt the first
time) and stops the cluster at the end only if this session started it. Without root or apt
the tests skip with the reason; under `CI=true` they fail instead, so CI never silently skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = REPO / "scripts" / "slurm_cluster.sh"


def _unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (slurmd); run the tests as root"
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is not available to install it"
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the SLURM tests cannot run: {reason}")
    pytest.skip(reason)


def _cluster_up() -> bool:
    return (
        subprocess.run(
            [str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True, timeout=60
        ).returncode
        == 0
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """Start (or reuse) the local SLURM cluster; yields the default partition's name."""
    was_up = bool(shutil.which("sinfo")) and _cluster_up()
    if not was_up or os.geteuid() == 0:  # (re)start: it is idempotent and updates the config
        reason = _unavailable_reason()
        if reason:
            _skip_or_fail(reason)
        result = subprocess.run(
            [str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            pytest.fail(f"scripts/slurm_cluster.sh start failed:\n{result.stdout}{result.stderr}")
    yield "low"
    if not was_up:
        subprocess.run([str(CLUSTER_SCRIPT), "stop"], capture_output=True, timeout=120)
