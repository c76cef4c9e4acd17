"""Run one recipe written for Lightning under Lightning and under launcher, and read both reports.

    lightning = run_recipe("lightning", "classifier.py", tmp_path / "pl", python=lightning_python)
    ours = run_recipe("launcher", "classifier.py", tmp_path / "ours")
    assert ours["hooks"] == lightning["hooks"]

For launcher the recipe's imports are renamed (`lightning.pytorch` -> `launcher`) and nothing
else, which is the promise to users. Each run is a fresh process in its own folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RECIPES = Path(__file__).parent / "recipes"
REPO = Path(__file__).resolve().parents[2]


def renamed_for_launcher(source: str) -> str:
    """The recipe's text with its Lightning imports pointed at launcher."""
    return source.replace("lightning.pytorch", "launcher")


def run_recipe(
    runtime: str, recipe: str, out: Path, *args: str, python: str | None = None
) -> dict[str, Any]:
    """Run `recipes/<recipe>` under `runtime` ("lightning" | "launcher"); return its report."""
    out.mkdir(parents=True, exist_ok=True)
    source = (RECIPES / recipe).read_text()
    script = out / recipe
    script.write_text(source if runtime == "lightning" else renamed_for_launcher(source))
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"sqlite:///{out}/m.db"}
    done = subprocess.run(
        [python or sys.executable, str(script), str(out), *args],
        cwd=out, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"{runtime} run of {recipe} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads((out / "report.json").read_text())
