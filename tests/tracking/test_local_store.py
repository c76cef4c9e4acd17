"""A fresh sqlite store made by several processes at once ends up whole and usable."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.resume_harness import REPO

_RACER = """
import sys, time
from launcher.tracking.local_store import prepare_local_store
uri, start, name, prepare = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
import mlflow.store.tracking.sqlalchemy_store  # imported before the start line: a fair race
from mlflow.tracking import MlflowClient
time.sleep(max(0.0, start - time.time()))
if prepare:
    prepare_local_store(uri)
client = MlflowClient(uri)
client.create_run(client.create_experiment(name)).info.run_id
print("ok", flush=True)
"""


def _race(db: Path, racers: int, prepare: bool) -> list[subprocess.CompletedProcess]:
    uri = f"sqlite:///{db}"
    start = time.time() + 12  # every racer has imported mlflow by then (2 shared cores)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, uri, str(start), f"exp{i}", "1" if prepare else "0"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(racers)
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


@pytest.mark.slow
def test_racing_first_runs_leave_a_whole_store(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    db = tmp_path / "out" / "mlflow.db"
    done = _race(db, 4, prepare=True)
    assert [d.returncode for d in done] == [0] * 4, [d.stderr[-2000:] for d in done]
    client = MlflowClient(f"sqlite:///{db}")
    names = sorted(e.name for e in client.search_experiments())
    assert names == ["Default", "exp0", "exp1", "exp2", "exp3"]
    assert sorted(p.name for p in db.parent.iterdir()) == ["mlflow.db", "mlflow.db.lock"]
