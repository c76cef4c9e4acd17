"""Where runs live and reading them back: tracking URIs, store errors, list/compare/plot, the UI.

    from launcher.tracking.reader import list_runs, compare_runs, plot_curves
    uri = default_tracking_uri("outputs")            # sqlite:////abs/outputs/mlflow.db
    rows = list_runs(uri, experiment="mnist")
    cmp = compare_runs(uri, [rows[0]["run_id"], rows[1]["run_id"]], metrics=["val_loss"])
    plot_curves(uri, [r["run_id"] for r in rows[:2]], ["val_loss"], "curves.png")

The URI and error helpers (`resolve_tracking_uri`, `local_artifact_root`, `configure_http_env`,
`is_connection_error`) also serve the loggers, which write runs; the rest serves `launch runs`,
`launch compare` and `launch ui`. Importing this module does not import mlflow; every function
imports it when it runs.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from launcher.common.secrets import mask_text
from launcher.errors import UserError
from launcher.tracking.run_end import mark_if_lost

if TYPE_CHECKING:
    import subprocess

    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

_URI_HINT = (
    "use http://HOST:PORT for a tracking server, sqlite:////ABS/PATH/mlflow.db for a local "
    "database, or a directory path"
)
_SETUP_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration")
_OTHER_SCHEMES = {"file", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc"}
# A dead server must not stall training or the CLI: fail fast, the logger's spool retries.
_HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
_MIN_METRIC_WORDS = ("loss", "error", "err", "mse", "mae", "rmse", "perplexity", "ppl", "time")
KEY_METRICS_SHOWN = 3


def default_tracking_uri(output_dir: str) -> str:
    """The local store used when no URI is given: `sqlite:///<abs output_dir>/mlflow.db`."""
    return f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


def local_artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a local sqlite store go next to its database: `<dir>/mlartifacts`."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()


def validate_tracking_uri(uri: str) -> str:
    """Return `uri` if MLflow can use it, else raise a `UserError` that shows the right form."""
    uri = uri.strip()
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower().split("+")[0]
    if not uri:
        raise UserError(f"the MLflow tracking URI is empty; {_URI_HINT}")
    if scheme in ("http", "https"):
        try:
            parsed.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise UserError(f"tracking URI {uri!r} has a bad port; {_URI_HINT}") from None
        if not parsed.hostname:
            raise UserError(f"tracking URI {uri!r} has no host; {_URI_HINT}")
        return uri
    if scheme == "sqlite":
        if not uri.startswith("sqlite:///") or len(uri) <= len("sqlite:///"):
            raise UserError(f"tracking URI {uri!r}: write sqlite:////ABS/PATH/mlflow.db")
        return uri
    if scheme in _OTHER_SCHEMES or len(scheme) == 1:  # one letter: a Windows drive
        return uri
    if re.fullmatch(r"[\w.-]+:\d+(/.*)?", uri):  # localhost:5000, 10.0.0.1:5000
        raise UserError(f"tracking URI {uri!r} has no scheme; did you mean http://{uri} ?")
    if scheme:
        raise UserError(f"tracking URI {uri!r}: unknown scheme {scheme!r}; {_URI_HINT}")
    return uri  # a plain path: a local directory store


def resolve_tracking_uri(tracking_uri: str | None, output_dir: str) -> str:
    """The argument, else `$MLFLOW_TRACKING_URI`, else `default_tracking_uri(output_dir)`."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(output_dir)
    return validate_tracking_uri(uri)


def configure_http_env() -> None:
    """Short MLflow HTTP timeouts/retries for this process, unless the user set their own.

    Also keeps MLflow's store set-up lines ("Creating initial MLflow database tables...") out
    of the console and SLURM logs: they cut through the live progress line and say nothing a
    user acts on. `launch --verbose` (LAUNCHER_VERBOSE=1) shows them.
    """
    for name, value in _HTTP_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if os.environ.get("LAUNCHER_VERBOSE") != "1":
        for name in _SETUP_LOGGERS:  # children of "mlflow": MLflow's own set-up keeps these
            logging.getLogger(name).setLevel(logging.WARNING)


def is_connection_error(exc: BaseException) -> bool:
    """True when `exc` means "the tracking store is unreachable right now" (worth retrying)."""
    seen: set[int] = set()
    link: BaseException | None = exc  # exc, then what caused it, down the chain
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        # Not any OSError: a missing artifact file must fail, not be retried forever.
        if isinstance(link, (ConnectionError, TimeoutError)):
            return True
        if type(link).__module__.startswith(("requests", "urllib3")):
            return True
        if type(link).__name__ == "OperationalError":  # sqlite "database is locked"
            return True
        if re.search(r"error code (429|502|503|504)\b", str(link)):
            return True
        if getattr(link, "error_code", None) == "TEMPORARILY_UNAVAILABLE":
            return True
        link = link.__cause__ or link.__context__
    return False


@contextmanager
def _client(tracking_uri: str) -> Iterator[MlflowClient]:
    """An `MlflowClient` for the CLI; store problems become `UserError`s."""
    uri = validate_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        raise UserError(
            f"no runs at {uri}: the database does not exist yet; start a run with "
            "`launch RECIPE.py`, or point --tracking-uri / --output-dir at an existing store"
        )
    configure_http_env()
    from mlflow.tracking import MlflowClient

    try:
        yield MlflowClient(uri)
    except Exception as exc:
        if is_connection_error(exc):
            raise UserError(
                f"cannot reach the MLflow store at {uri}: start it or fix the URI"
            ) from exc
        raise


open_client = _client  # the public name: `with open_client(uri) as client: ...`


def metric_mode(key: str) -> str:
    """Which way is better for `key`: "min" for losses and errors, else "max" (accuracy...)."""
    words = re.split(r"[^a-z0-9]+", key.lower())
    return "min" if any(w in _MIN_METRIC_WORDS for w in words) else "max"


def user_metric_keys(keys: Iterable[str]) -> list[str]:
    """Metric keys without the sampled `system/*` ones; validation metrics first."""
    user = [k for k in keys if not k.startswith("system/")]
    return sorted(user, key=lambda k: (not k.startswith(("val", "valid")), k))


@dataclass
class MetricSummary:
    """Final and best value of one metric in one run."""

    final: float
    final_step: int
    best: float
    best_step: int
    mode: str  # "min" | "max": what "best" means for this metric


def _summarize(client: MlflowClient, run_id: str, key: str) -> MetricSummary | None:
    history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    if not history:
        return None
    mode = metric_mode(key)
    pick = min if mode == "min" else max
    best = pick(history, key=lambda m: m.value)
    return MetricSummary(history[-1].value, history[-1].step, best.value, best.step, mode)


def list_runs(
    tracking_uri: str, experiment: str | None = None, max_results: int = 50
) -> list[dict[str, Any]]:
    """Recent runs, newest first, as rows for a table (see the module docstring).

    A local sqlite store is read with the stdlib (`sqlite_runs`: no mlflow import); the MLflow
    client only when that read cannot answer alone (a run to mark lost, an unknown schema).
    """
    if tracking_uri.startswith("sqlite:///"):
        from launcher.tracking.sqlite_runs import list_sqlite_runs

        rows = list_sqlite_runs(Path(tracking_uri[len("sqlite:///") :]), experiment, max_results)
        if rows is not None:
            return rows
    with _client(tracking_uri) as client:
        if experiment is None:
            experiments = list(client.search_experiments())
        else:
            found = client.get_experiment_by_name(experiment)
            if found is None:
                names = sorted(e.name for e in client.search_experiments())
                raise UserError(
                    f"no experiment {experiment!r} at {mask_text(tracking_uri)}; have: {names}"
                )
            experiments = [found]
        by_id = {e.experiment_id: e.name for e in experiments}
        if not by_id:
            return []
        runs = client.search_runs(
            list(by_id), max_results=max_results, order_by=["attributes.start_time DESC"]
        )
        # A run whose processes died without a word is marked by whoever notices: us.
        marked = [client.get_run(r.info.run_id) if mark_if_lost(client, r) else r for r in runs]
        return [_row(client, run, by_id[run.info.experiment_id]) for run in marked]


def _row(client: MlflowClient, run: Run, experiment: str) -> dict[str, Any]:
    info, params, tags = run.info, run.data.params, run.data.tags
    keys = user_metric_keys(run.data.metrics)[:KEY_METRICS_SHOWN]
    return run_row(
        RunFacts(info.run_id, info.run_name, experiment, info.status, info.start_time,
                 info.end_time, params, tags),
        {k: _summarize(client, info.run_id, k) for k in keys},
    )  # fmt: skip


@dataclass
class RunFacts:
    """What a `launch runs` line is made of, as the store keeps it (times in epoch ms)."""

    run_id: str
    name: str
    experiment: str
    status: str
    start_time: int | None
    end_time: int | None
    params: Mapping[str, str]
    tags: Mapping[str, str]


def run_row(run: RunFacts, metrics: dict[str, MetricSummary | None]) -> dict[str, Any]:
    """One row of `list_runs`, whoever read the store (the MLflow client or `sqlite_runs`)."""
    params, tags = run.params, run.tags
    end = run.end_time or time.time() * 1000
    return {
        "run_id": run.run_id,
        "name": run.name,
        "experiment": run.experiment,
        "status": run.status,
        "state_tag": tags.get("launcher.state"),  # "lost": FAILED without a word (run_end.py)
        "recipe": tags.get("launcher.recipe"),
        "backend": tags.get("launcher.backend"),
        "nodes_x_gpus": f"{params.get('launch.nodes', '?')}x{params.get('launch.devices_per_node', '?')}",
        "precision": params.get("trainer.precision"),
        "requeues": int(tags.get("launcher.requeue_count", 0) or 0),
        "metrics": metrics,
        "duration_s": max(0.0, (end - run.start_time) / 1000) if run.start_time else None,
        "start_time": run.start_time / 1000 if run.start_time else None,  # epoch seconds
        "end_time": run.end_time / 1000 if run.end_time else None,
    }


@dataclass
class Comparison:
    """Runs side by side: params that differ, and final/best of each metric per run."""

    runs: list[dict[str, str]]  # run_id, name, status; the column order of the lists below
    params: dict[str, list[str | None]] = field(default_factory=dict)
    metrics: dict[str, list[MetricSummary | None]] = field(default_factory=dict)


def _get_run(
    client: MlflowClient, ref: str, tracking_uri: str, aliases: Mapping[str, str] | None = None
) -> Run:
    """The run `ref` names: its id, its name or a unique id prefix; else `aliases[ref]`'s.

    `aliases` maps other names for a run (a job handle) to its run name. An ambiguous `ref`
    is a `UserError` listing the candidates.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(ref)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    every = _all_runs(client)
    for wanted in (ref, (aliases or {}).get(ref)):
        if not wanted:
            continue
        # A whole name is more specific than a prefix of some id ("a" vs "abc3...").
        matches = [r for r in every if r.info.run_name == wanted] or [
            r for r in every if r.info.run_id.startswith(wanted)
        ]
        if len(matches) == 1:
            return matches[0]
        if matches:
            listed = ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in matches[:10])
            raise UserError(
                f"run {ref!r} is ambiguous at {mask_text(tracking_uri)}: it may be {listed}"
            )
    raise UserError(
        f"run {ref!r} does not exist at {mask_text(tracking_uri)}; list runs with `launch runs`"
    )


def _all_runs(client: MlflowClient) -> list[Run]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(experiments, max_results=5000)) if experiments else []


def newest_experiment(tracking_uri: str) -> tuple[str, str] | None:
    """`(experiment id, name)` of the experiment with the newest run, or None without runs.

    `launch ui` prints its runs-table address: the page people open to compare runs.
    """
    with _client(tracking_uri) as client:
        experiments = {e.experiment_id: e.name for e in client.search_experiments()}
        newest = client.search_runs(
            list(experiments), order_by=["attributes.start_time DESC"], max_results=1
        ) if experiments else []  # fmt: skip
        if not newest:
            return None
        experiment_id = newest[0].info.experiment_id
        return experiment_id, experiments[experiment_id]


def runs_with_id_prefix(tracking_uri: str, prefix: str) -> list[tuple[str, str]]:
    """`(run id, run name)` of the runs whose id starts with `prefix` (the CLI maps them to jobs).

    Example: `runs_with_id_prefix(uri, "3f2a")` -> `[("3f2a9c1d...", "mnist-lr0.01")]`.
    """
    with _client(tracking_uri) as client:
        return [
            (r.info.run_id, r.info.run_name)
            for r in _all_runs(client)
            if r.info.run_id.startswith(prefix)
        ]


def compare_runs(
    tracking_uri: str,
    run_ids: list[str],
    metrics: list[str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> Comparison:
    """Compare runs: `compare_runs(uri, ["3f2a...", "mnist-lr0.1"], metrics=["val_loss"])`.

    Each run is named by its id, a unique id prefix, its run name, or a key of `aliases`
    (other names -> run name, e.g. job handles).
    """
    with _client(tracking_uri) as client:
        runs = [_get_run(client, run_id, tracking_uri, aliases) for run_id in run_ids]
        available = user_metric_keys({k for run in runs for k in run.data.metrics})
        keys = list(metrics) if metrics else available
        _check_metrics(keys, {k for run in runs for k in run.data.metrics})
        result = Comparison(
            runs=[
                {"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status}
                for r in runs
            ]
        )
        for name in sorted({p for run in runs for p in run.data.params}):
            values = [run.data.params.get(name) for run in runs]
            if len(set(values)) > 1:
                result.params[name] = values
        for key in keys:
            result.metrics[key] = [_summarize(client, r.info.run_id, key) for r in runs]
        return result


def _check_metrics(wanted: list[str], present: set[str]) -> None:
    missing = [k for k in wanted if k not in present]
    if missing:
        raise UserError(
            f"no run has metric(s) {missing}; available: {user_metric_keys(present) or 'none'}"
        )


def plot_curves(tracking_uri: str, run_ids: list[str], metrics: list[str] | None, path: str) -> str:
    """Write a PNG of each metric against step, one line per run; returns `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _client(tracking_uri) as client:
        runs = [_get_run(client, run_id, tracking_uri) for run_id in run_ids]
        present = {k for run in runs for k in run.data.metrics}
        keys = list(metrics) if metrics else user_metric_keys(present)
        _check_metrics(keys, present)
        if not keys:
            raise UserError("these runs logged no metrics; nothing to plot")
        # Figure + Agg canvas directly: no pyplot, no global backend switch.
        fig = Figure(figsize=(7, 3 * len(keys)))
        FigureCanvasAgg(fig)
        for i, key in enumerate(keys):
            ax = fig.add_subplot(len(keys), 1, i + 1)
            for run in runs:
                history = sorted(
                    client.get_metric_history(run.info.run_id, key), key=lambda m: m.step
                )
                label = f"{run.info.run_name} ({run.info.run_id[:8]})"
                ax.plot([m.step for m in history], [m.value for m in history], label=label)
            ax.set_xlabel("step")
            ax.set_ylabel(key)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        fig.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100)
    return path


def serve_ui(tracking_uri: str, port: int = 5000) -> subprocess.Popen[bytes]:
    """Start the MLflow UI for a local store on http://127.0.0.1:`port`; returns the Popen.

    proc = serve_ui(default_tracking_uri("outputs"), port=5000)
    wait_for_server("http://127.0.0.1:5000", proc); ...; stop_server(proc)
    """
    import socket

    from launcher.tracking.server import start_server

    uri = validate_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise UserError(f"{uri} is a tracking server: it serves the UI already; open it")
    with _client(uri):  # checks that the store exists
        pass
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise UserError(f"port {port} on 127.0.0.1 is busy; pick another with --port")
    root = local_artifact_root(uri)
    return start_server(uri, port, artifacts_dir=root[len("file://") :] if root else None)
