"""`lightning_python`: an interpreter with PyTorch Lightning, for behaviour comparisons.

scripts/lightning_env.sh makes it the first time (a venv sharing this interpreter's torch).
Lightning is never a dependency of ours; where it cannot be installed, the comparison
tests fail loudly instead of skipping.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "lightning_env.sh"


@pytest.fixture(scope="session")
def lightning_python() -> str:
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"could not set up Lightning for the comparison tests:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]
