"""`launch runs` on a local sqlite store, read with the stdlib: no mlflow, no SQLAlchemy.

    rows = list_sqlite_runs(Path("outputs/mlflow.db"), experiment=None, max_results=50)
    # the same rows as `reader.list_runs`, or None: ask the MLflow client instead

Importing mlflow costs seconds; a listing needs six small queries on MLflow's own tables
(experiments, runs, params, tags, latest_metrics, metrics), read in a read-only connection.
Whatever this reader cannot answer exactly as the client would returns None and the caller
asks the client: a schema it does not know, several workspaces, a NaN metric (MLflow's own
ordering rules for NaN), or a RUNNING run whose heartbeat went silent (marking it lost writes
to the store, which is the client's job: `run_end.mark_if_lost`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from launcher.common.heartbeat import is_lost
from launcher.common.secrets import mask_text
from launcher.errors import UserError
from launcher.tracking.reader import (
    KEY_METRICS_SHOWN,
    MetricSummary,
    RunFacts,
    metric_mode,
    run_row,
    user_metric_keys,
)
from launcher.tracking.tags import RUN_DIR_TAG

# The columns read here; another schema (older or newer MLflow) goes to the client.
_COLUMNS = {
    "experiments": {"experiment_id", "name", "lifecycle_stage"},
    "runs": {"run_uuid", "name", "status", "start_time", "end_time", "experiment_id",
             "lifecycle_stage"},
    "params": {"key", "value", "run_uuid"},
    "tags": {"key", "value", "run_uuid"},
    "latest_metrics": {"key", "run_uuid", "is_nan"},
    "metrics": {"key", "value", "timestamp", "step", "run_uuid", "is_nan"},
}  # fmt: skip
# The params and tags a row shows (reader.run_row), and where a run's heartbeat is.
_PARAMS = ("launch.nodes", "launch.devices_per_node", "trainer.precision")
_TAGS = ("launcher.state", "launcher.recipe", "launcher.backend", "launcher.requeue_count",
         RUN_DIR_TAG)  # fmt: skip
_BUSY_TIMEOUT_S = 5.0  # a run writing its metrics holds the write lock for milliseconds


def list_sqlite_runs(
    db: Path, experiment: str | None, max_results: int
) -> list[dict[str, Any]] | None:
    """The newest `max_results` runs (of `experiment`), as `reader.list_runs` rows; None when
    the MLflow client must answer instead (see the module docstring)."""
    if not db.is_file():
        return None  # the client's error says the store does not exist yet
    try:
        connection = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True,
                                     timeout=_BUSY_TIMEOUT_S)  # fmt: skip
    except sqlite3.Error:
        return None
    try:
        return _list(connection, f"sqlite:///{db}", experiment, max_results)
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def _list(
    db: sqlite3.Connection, uri: str, experiment: str | None, max_results: int
) -> list[dict[str, Any]] | None:
    if not _known_schema(db):
        return None
    active = db.execute(
        "SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'"
    ).fetchall()
    if experiment is None:
        experiments = dict(active)
    else:
        found = db.execute(
            "SELECT experiment_id, name FROM experiments WHERE name = ?", (experiment,)
        ).fetchall()
        if not found:
            names = sorted(name for _, name in active)
            raise UserError(f"no experiment {experiment!r} at {mask_text(uri)}; have: {names}")
        experiments = dict(found)
    if not experiments:
        return []
    # MLflow's order for "attributes.start_time DESC": no start time last, then the run id.
    runs = db.execute(
        f"SELECT run_uuid, name, status, start_time, end_time, experiment_id FROM runs "
        f"WHERE lifecycle_stage = 'active' AND experiment_id IN ({_marks(experiments)}) "
        f"ORDER BY start_time IS NULL, start_time DESC, run_uuid LIMIT ?",
        (*experiments, max_results),
    ).fetchall()
    ids = [run[0] for run in runs]
    params = _values(db, "params", ids, _PARAMS)
    tags = _values(db, "tags", ids, _TAGS)
    if any(status == "RUNNING" and is_lost(tags[run_id].get(RUN_DIR_TAG))
           for run_id, _, status, *_ in runs):  # fmt: skip
        return None  # a lost run to mark: a write, the client's job
    keys: dict[str, list[str]] = {run_id: [] for run_id in ids}
    for run_id, key, is_nan in db.execute(
        f"SELECT run_uuid, key, is_nan FROM latest_metrics WHERE run_uuid IN ({_marks(ids)})", ids
    ):
        if is_nan:
            return None
        keys[run_id].append(key)
    rows = []
    for run_id, name, status, start, end, experiment_id in runs:
        shown = user_metric_keys(keys[run_id])[:KEY_METRICS_SHOWN]
        summaries = {key: _summary(db, run_id, key) for key in shown}
        if any(s is _NAN for s in summaries.values()):
            return None
        facts = RunFacts(run_id, name, experiments[experiment_id], status, start, end,
                         params[run_id], tags[run_id])  # fmt: skip
        rows.append(run_row(facts, summaries))  # type: ignore[arg-type] # _NAN returned above
    return rows


_NAN = object()  # a NaN in the history: the client's ordering rules decide, not ours


def _summary(db: sqlite3.Connection, run_id: str, key: str) -> MetricSummary | None | object:
    """As `reader._summarize`: the last value by (step, timestamp) and the first best one."""
    where = "FROM metrics WHERE run_uuid = ? AND key = ?"
    if db.execute(f"SELECT 1 {where} AND is_nan = 1 LIMIT 1", (run_id, key)).fetchone():
        return _NAN
    final = db.execute(
        f"SELECT value, step {where} ORDER BY step DESC, timestamp DESC LIMIT 1", (run_id, key)
    ).fetchone()
    if final is None:
        return None
    mode = metric_mode(key)
    order = "ASC" if mode == "min" else "DESC"
    best = db.execute(
        f"SELECT value, step {where} ORDER BY value {order}, step, timestamp LIMIT 1",
        (run_id, key),
    ).fetchone()
    return MetricSummary(final[0], final[1], best[0], best[1], mode)


def _known_schema(db: sqlite3.Connection) -> bool:
    for table, needed in _COLUMNS.items():
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not needed <= columns:
            return False
    columns = {row[1] for row in db.execute("PRAGMA table_info(experiments)")}
    if "workspace" in columns:  # MLflow 3's workspaces: one is what the client shows alone
        count = db.execute("SELECT COUNT(DISTINCT workspace) FROM experiments").fetchone()[0]
        return bool(count <= 1)
    return True


def _values(
    db: sqlite3.Connection, table: str, ids: Sequence[str], keys: Sequence[str]
) -> dict[str, dict[str, str]]:
    """run id -> {key: value} of `table` (params or tags), only `keys`."""
    found: dict[str, dict[str, str]] = {run_id: {} for run_id in ids}
    rows = db.execute(
        f"SELECT run_uuid, key, value FROM {table} "
        f"WHERE run_uuid IN ({_marks(ids)}) AND key IN ({_marks(keys)})",
        (*ids, *keys),
    )
    for run_id, key, value in rows:
        found[run_id][key] = value
    return found


def _marks(values: Any) -> str:
    return ", ".join("?" * len(values))
