#!/usr/bin/env bash
# Install the project with its test tools, lint (ruff, with SLF001) and type-check (mypy over
# launcher/ and backends/), then run the whole test suite (slow tests too).
#
#   bash scripts/test.sh            # everything: unit, multi-process DDP, SLURM, Ray, MLflow
#   bash scripts/test.sh -m "not slow"    # extra arguments go to pytest
#
# The tests start what they need themselves: a 2-node SLURM cluster (scripts/slurm_cluster.sh,
# installs slurm-wlm + munge with apt the first time; needs root), a 2-node Ray cluster
# (scripts/ray_cluster.sh) and an MLflow server, all bound to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
ruff check .
ruff format --check .
python3 -m mypy
# One process by default: on 2 cores a second xdist worker doubles the load, and the tests
# that time recovery (outage, kills) are measured under it. More cores: TEST_WORKERS=4
# (conftest.py keeps each shared cluster's tests on one worker). The 30 slowest tests are
# listed at the end: the suite should stay under ~25 minutes.
exec python3 -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-0}" --dist loadgroup \
    --durations=30 "$@"
