"""The local sqlite tracking store, created whole even when several runs start at once.

    prepare_local_store("sqlite:////abs/outputs/mlflow.db")   # before any MLflow client uses it

MLflow creates a missing sqlite database and migrates it on first use; two processes doing so
at once leave it half-migrated for good. Here one process, holding `mlflow.db.lock`, builds
the database in a temporary file and renames it into place; the others wait for the lock and
then find it complete. Any other URI (a server, an existing database) is left alone.

Migrating a new database runs MLflow's ~60 alembic migrations: 2-4 s of CPU, paid by every
new output folder (and every test). So the first store made with an MLflow version is kept,
without its Default experiment, as a template in the user's cache
(`~/.cache/launcher/mlflow-store-<mlflow>-<sqlalchemy>.db`, `$XDG_CACHE_HOME` honoured);
later stores are a copy of it, which MLflow opens as an up-to-date store and gives its own
Default experiment (artifact location, creation time). No cache to write: migrated as before.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
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
    artifact_root = local_artifact_root(tracking_uri) or ""

    def build(tmp: Path) -> None:
        configure_http_env()  # MLflow's set-up lines stay quiet unless --verbose
        _create(tmp, artifact_root)

    _make_once(db, build)


def _make_once(path: Path, build: Callable[[Path], None]) -> None:
    """Create `path` whole, once, however many processes race: under `<path>.lock`, `build`
    writes a temporary file beside it, which is renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if path.exists():  # made by the process that held the lock before us
            return
        for stale in path.parent.glob(f".{path.name}.*.creating*"):  # a creator that was killed
            stale.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.creating")
        build(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)


def _create(path: Path, artifact_root: str) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    template = _template()
    if template is not None:
        shutil.copyfile(template, path)
    # On the template's copy MLflow finds its tables up to date and adds the Default
    # experiment; on an empty file it creates and migrates everything.
    store = SqlAlchemyStore(f"sqlite:///{path}", artifact_root)
    store.engine.dispose()  # closes the file: nothing of it stays open across the rename


def template_path() -> Path | None:
    """Where the empty store of this MLflow and SQLAlchemy is cached (None: not installed)."""
    try:
        versions = f"{version('mlflow')}-{version('sqlalchemy')}"
    except PackageNotFoundError:
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "launcher"
    return cache / f"mlflow-store-{versions}.db"


def _template() -> Path | None:
    """The cached empty store, made now if missing; None when the cache cannot be written."""
    path = template_path()
    if path is None:
        return None
    if path.is_file():
        return path
    try:
        _make_once(path, lambda tmp: _build_template(tmp, path.parent / "unused"))
    except OSError:  # a read-only home, a full disk: this store is migrated in place
        return None
    return path


def _build_template(tmp: Path, artifact_root: Path) -> None:
    """A migrated store without its Default experiment: each copy gets its own."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{tmp}", artifact_root.as_uri())
    store.engine.dispose()
    db = sqlite3.connect(tmp)
    try:
        with db:  # commits
            db.execute("DELETE FROM experiments WHERE experiment_id = 0")
    finally:
        db.close()
