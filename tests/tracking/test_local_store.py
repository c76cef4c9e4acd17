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


def test_a_new_store_is_a_copy_of_the_cached_template_with_its_own_default_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from mlflow.tracking import MlflowClient

    from launcher.tracking import local_store
    from launcher.tracking.local_store import prepare_local_store, template_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = template_path()
    assert template is not None and template.parent == tmp_path / "cache" / "launcher"
    first = tmp_path / "a" / "mlflow.db"
    prepare_local_store(f"sqlite:///{first}")  # migrates once, into the cache
    assert template.is_file()
    with sqlite3.connect(template) as db:  # no Default experiment: each store makes its own
        assert db.execute("SELECT COUNT(*) FROM experiments").fetchone() == (0,)
    import mlflow.store.db.utils as db_utils

    migrations, migrate = [], db_utils._initialize_tables

    def counted(engine) -> None:
        migrations.append(engine)
        migrate(engine)

    monkeypatch.setattr(db_utils, "_initialize_tables", counted)
    second = tmp_path / "b" / "mlflow.db"
    prepare_local_store(f"sqlite:///{second}")
    assert migrations == []  # copied, not migrated
    client = MlflowClient(f"sqlite:///{second}")
    (default,) = client.search_experiments()
    assert default.name == "Default"
    assert default.artifact_location == (second.parent / "mlartifacts" / "0").as_uri()
    run = client.create_run(client.create_experiment("e")).info.run_id
    client.log_metric(run, "loss", 0.5, step=1)
    assert [m.value for m in client.get_metric_history(run, "loss")] == [0.5]
    assert sorted(p.name for p in second.parent.iterdir()) == ["mlflow.db", "mlflow.db.lock"]

    # No cache to write (a read-only home): the store is migrated in place, as before.
    monkeypatch.setattr(local_store, "template_path", lambda: Path("/proc/no-cache/t.db"))
    third = tmp_path / "c" / "mlflow.db"
    prepare_local_store(f"sqlite:///{third}")
    assert len(migrations) == 1 and third.is_file()
