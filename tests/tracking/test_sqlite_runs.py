"""`launch runs` on a local sqlite store without mlflow: the same rows as the MLflow client's.

python -m pytest tests/tracking/test_sqlite_runs.py -x -q
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.tracking import sqlite_runs
from launcher.tracking.reader import default_tracking_uri, list_runs

REPO = Path(__file__).resolve().parents[2]
# The store takes ~15 s to create (mlflow import and its migrations); the tests take < 1 s.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Two experiments; finished, failed, running, deleted and unstarted runs; ties in metrics."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    out = tmp_path_factory.mktemp("store")
    client = MlflowClient(default_tracking_uri(str(out)))
    now = int(time.time() * 1000)
    for experiment_name in ("mnist", "cifar"):
        experiment = client.create_experiment(experiment_name)
        for i in range(4):
            run = client.create_run(experiment, run_name=f"{experiment_name}-{i}",
                                    start_time=now - 10_000 + (i % 3))  # fmt: skip # ties too
            # A loss that dips twice to the same best (the first counts), logged twice at a
            # step (a resume), an accuracy, a sampled system metric that is never shown.
            losses = [0.9, 0.5, 0.7, 0.5, 0.6 + i]
            metrics = [Metric("train/loss", v, now + s, s) for s, v in enumerate(losses)]
            metrics += [Metric("train/loss", 0.55, now + 99, 3)]
            metrics += [Metric("val_acc", 0.1 * s + i, now + s, s) for s in range(3)]
            metrics += [Metric("system/cpu", 50.0, now, 0), Metric("aaa", 1.0, now, 0)]
            client.log_batch(
                run.info.run_id, metrics=metrics,
                params=[Param("launch.nodes", "2"), Param("launch.devices_per_node", str(i)),
                        Param("trainer.precision", "bf16-mixed"), Param("lr", "0.1")],
                tags=[RunTag("launcher.recipe", "mnist"), RunTag("launcher.backend", "slurm"),
                      RunTag("launcher.requeue_count", str(i))],
            )  # fmt: skip
            if i == 0:
                client.set_terminated(run.info.run_id, "FINISHED", end_time=now)
            elif i == 1:
                client.set_terminated(run.info.run_id, "FAILED", end_time=now - 5_000)
            elif i == 3:
                client.delete_run(run.info.run_id)
        client.create_run(experiment, run_name=f"{experiment_name}-empty")  # no metrics
    client.delete_experiment(client.create_experiment("gone"))
    return out


def _rows(rows: list[dict]) -> list[dict]:
    """Rows with `duration_s` of running runs dropped (it grows between two reads)."""
    return [{k: v for k, v in row.items() if k != "duration_s" or row["end_time"]} for row in rows]


@pytest.mark.parametrize(("experiment", "max_results"), [(None, 50), ("cifar", 50), (None, 3)])
def test_the_stdlib_read_gives_the_clients_rows(store, monkeypatch, experiment, max_results):
    uri = default_tracking_uri(str(store))
    fast = list_runs(uri, experiment, max_results)
    monkeypatch.setattr(sqlite_runs, "list_sqlite_runs", lambda *args: None)  # the client's
    slow = list_runs(uri, experiment, max_results)
    assert _rows(fast) == _rows(slow)
    assert len(fast) == (3 if max_results == 3 else 8 if experiment is None else 4)
    if max_results == 3:
        return
    first = next(row for row in fast if row["name"] == f"{experiment or 'mnist'}-0")
    loss = first["metrics"]["train/loss"]
    assert (loss.final, loss.final_step, loss.best, loss.best_step) == (0.6, 4, 0.5, 1)
    assert list(first["metrics"]) == ["val_acc", "aaa", "train/loss"]  # validation first


def test_what_only_the_client_can_answer_goes_to_it(store, tmp_path):
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    db = store / "mlflow.db"
    assert sqlite_runs.list_sqlite_runs(db, None, 50) is not None
    assert sqlite_runs.list_sqlite_runs(tmp_path / "missing.db", None, 50) is None
    (tmp_path / "other.db").write_bytes(b"not a database at all, just bytes" * 10)
    assert sqlite_runs.list_sqlite_runs(tmp_path / "other.db", None, 50) is None
    copy = tmp_path / "nan" / "mlflow.db"
    copy.parent.mkdir()
    copy.write_bytes(db.read_bytes())
    client = MlflowClient(f"sqlite:///{copy}")
    run = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])[0]
    client.log_batch(run.info.run_id, metrics=[Metric("val_acc", math.nan, 1, 7)])
    assert sqlite_runs.list_sqlite_runs(copy, None, 50) is None  # NaN: MLflow's own ordering
    rows = list_runs(f"sqlite:///{copy}")  # ... which the client gives
    assert any(math.isnan(row["metrics"]["val_acc"].final) for row in rows if row["metrics"])


def test_launch_runs_in_a_fresh_process_imports_no_mlflow(store):
    code = (
        "import sys, json; from launcher.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('mlflow', 'sqlalchemy', 'torch', 'pandas', 'pydantic')"
        " if m in sys.modules]\n"
        "print(json.dumps(heavy), file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-c", code, "runs", "--output-dir", str(store)],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    lines = done.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["run", "id", "name"] and len(lines) == 1 + 8
    assert any("mnist-0" in line and "SUCCEEDED" in line for line in lines)
