"""The local sqlite tracking store, created whole even when several runs start at once.

    prepare_local_store("sqlite:////abs/outputs/mlflow.db")   # before any MLflow client uses it

MLflow creates a missing sqlite database and migrates it on first use; two processes doing so
at once leave it half-migrated for good. Here one process, holding `mlflow.db.lock`, builds
the database in a temporary file and renames it into place; the others wait for the lock and
then find it complete. Any other URI (a server, an existing database) is left alone.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from launcher.common.files import fsync_dir
from launcher.tracking.reader import configure_http_env, local_artifact_root


def prepare_local_store(tracking_uri: str) -> None:
    """Make sure a `sqlite:///` store exists and is fully migrated (a no-op once it does)."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    db = Path(tracking_uri[len("sqlite:///") :])
    if db.exists():
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(f"{db.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if db.exists():  # made by the process that held the lock before us
            return
        for stale in db.parent.glob(f".{db.name}.*.creating*"):  # a creator that was killed
            stale.unlink(missing_ok=True)
        tmp = db.with_name(f".{db.name}.{os.getpid()}.creating")
        configure_http_env()  # MLflow's set-up lines stay quiet unless --verbose
        _create(tmp, local_artifact_root(tracking_uri) or "")
        os.replace(tmp, db)
        fsync_dir(db.parent)


def _create(path: Path, artifact_root: str) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{path}", artifact_root)  # creates and migrates
    store.engine.dispose()  # closes the file: nothing of it stays open across the rename
