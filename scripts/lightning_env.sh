#!/usr/bin/env bash
# A Python environment with PyTorch Lightning, for tests that compare our behaviour with
# Lightning's. It shares this interpreter's packages (torch is not installed twice) and is
# never a dependency of ours. Prints the environment's python on stdout.
#
#   PY=$(bash scripts/lightning_env.sh)      # creates .venv-lightning the first time
#   LIGHTNING_VENV=/tmp/lv bash scripts/lightning_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LIGHTNING_VENV:-$PWD/.venv-lightning}"
VERSION="${LIGHTNING_VERSION:-2.6.*}"
# One creator at a time (parallel test workers); the others find it made.
exec 9>"/tmp/launcher-lightning-env.lock" && flock 9
if ! "$VENV/bin/python" -c "import lightning" >/dev/null 2>&1; then
    python3 -m venv --system-site-packages "$VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "lightning==$VERSION" >&2
fi
echo "$VENV/bin/python"
