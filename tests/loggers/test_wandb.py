"""WandbLogger: a clear error without wandb, and a real offline run with it.

python -m pytest tests/loggers/test_wandb.py -x -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=300, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )  # fmt: skip


def test_without_wandb_the_error_names_the_install(tmp_path):
    # A `wandb` that fails to import stands for the package not being installed.
    (tmp_path / "wandb.py").write_text("raise ImportError('No module named wandb')\n")
    done = run(
        "from launcher.loggers import WandbLogger", tmp_path, PYTHONPATH=f"{tmp_path}:{REPO}"
    )
    assert done.returncode != 0
    assert "ImportError: WandbLogger needs the wandb package: pip install wandb" in done.stderr


def test_an_offline_run_records_config_and_metrics(tmp_path):
    done = run(
        """
        import json, sys
        from argparse import Namespace
        from launcher.loggers import WandbLogger
        logger = WandbLogger(project="p", name="r", save_dir="out", offline=True, prefix="f")
        logger.log_hyperparams(Namespace(lr=0.1, layers=[8, 4]))
        for step in range(3):
            logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        logger.finalize("success")
        run = logger.experiment
        state = logger.state_dict()
        print(json.dumps({"id": run.id, "state": state, "name": logger.name,
                          "save_dir": logger.save_dir, "config": dict(run.config),
                          "summary": dict(run.summary)}))
        run.finish()
        """,
        tmp_path,
        WANDB_MODE="offline",
        WANDB_SILENT="true",
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["state"] == {"id": out["id"]} and out["name"] == "p" and out["save_dir"] == "out"
    assert out["config"] == {"lr": 0.1, "layers": [8, 4]}
    assert out["summary"]["f-loss"] == 1.0 / 3 and out["summary"]["trainer/global_step"] == 2
    (run_dir,) = (tmp_path / "out" / "wandb").glob(f"offline-run-*-{out['id']}")
    assert list(run_dir.glob("*.wandb"))  # the run's records, for `wandb sync`
