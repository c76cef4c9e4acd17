"""`launch runs`, `launch compare`, `launch ui`, `launch sync`: the MLflow side of the CLI.

    launch runs --experiment mnist
    launch compare 3f2a9c1d 9bc1e2f0 --metric val_loss --plot curves.png
    launch ui --port 5000
    launch sync outputs/mnist/run-1

The commands parse flags and print; the work is in `launcher.tracking.reader` and
`launcher.loggers.spool.replay_spool`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from launcher.cli.options import DebugOption
from launcher.errors import UserError
from launcher.tracking.reader import MetricSummary

TrackingUriOption = Annotated[
    str | None,
    typer.Option(help="MLflow store [default: $MLFLOW_TRACKING_URI, else OUTPUT_DIR/mlflow.db]."),
]
OutputDirOption = Annotated[
    str, typer.Option(help="Where runs and the local MLflow store live [./outputs].")
]
DEFAULT_OUTPUT_DIR = "./outputs"


def _console():
    from rich.console import Console

    return Console()


def _uri(tracking_uri: str | None, output_dir: str) -> str:
    from launcher.tracking.reader import resolve_tracking_uri

    return resolve_tracking_uri(tracking_uri, output_dir)


def _summary(s: MetricSummary | None) -> str:
    if s is None:
        return "-"
    return f"{s.final:.4g} @{s.final_step} / {s.mode} {s.best:.4g} @{s.best_step}"


def runs(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    tracking_uri: TrackingUriOption = None,
    output_dir: OutputDirOption = DEFAULT_OUTPUT_DIR,
    debug: DebugOption = False,
) -> None:
    """List recent runs with their status, size, precision, key metrics and duration."""
    from rich.table import Table

    from launcher.tracking.reader import list_runs

    uri = _uri(tracking_uri, output_dir)
    table = Table(title=f"Runs in {uri}")
    for column in (
        "run",
        "name",
        "status",
        "recipe",
        "backend",
        "nodes x gpus",
        "precision",
        "metrics: final / best",
        "duration",
    ):
        table.add_column(column)
    for row in list_runs(uri, experiment):
        metrics = "\n".join(f"{k}: {_summary(s)}" for k, s in row["metrics"].items())
        duration = f"{row['duration_s']:.0f}s" if row["duration_s"] is not None else "-"
        table.add_row(
            row["run_id"][:8],
            row["name"],
            row["status"],
            row["recipe"] or "-",
            row["backend"] or "-",
            row["nodes_x_gpus"],
            row["precision"] or "-",
            metrics or "-",
            duration,
        )
    _console().print(table)


def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or unique prefixes).")],
    metric: Annotated[
        list[str] | None, typer.Option(help="Metric to compare (repeat) [default: all].")
    ] = None,
    plot: Annotated[str | None, typer.Option(help="Also write a PNG of the curves here.")] = None,
    tracking_uri: TrackingUriOption = None,
    output_dir: OutputDirOption = DEFAULT_OUTPUT_DIR,
    debug: DebugOption = False,
) -> None:
    """Show runs side by side: the params that differ, final and best value of each metric."""
    from rich.table import Table

    from launcher.tracking.reader import compare_runs, plot_curves

    if len(run_ids) < 2:
        raise UserError("compare needs two or more runs; list them with `launch runs`")
    uri = _uri(tracking_uri, output_dir)
    result = compare_runs(uri, run_ids, metric or None)
    table = Table(title="params that differ, then metrics (final @step / best @step)")
    table.add_column("")
    for run in result.runs:
        table.add_column(f"{run['name']} ({run['run_id'][:8]})")
    for name, values in result.params.items():
        table.add_row(name, *[v if v is not None else "-" for v in values])
    table.add_section()
    for key, summaries in result.metrics.items():
        table.add_row(key, *[_summary(s) for s in summaries])
    _console().print(table)
    if plot:
        path = plot_curves(uri, [r["run_id"] for r in result.runs], list(result.metrics), plot)
        _console().print(f"curves written to {path}")


def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    tracking_uri: TrackingUriOption = None,
    output_dir: OutputDirOption = DEFAULT_OUTPUT_DIR,
    debug: DebugOption = False,
) -> None:
    """Serve the MLflow UI on http://127.0.0.1:PORT until Ctrl-C."""
    from launcher.tracking.reader import serve_ui
    from launcher.tracking.server import stop_server, wait_for_server

    uri = _uri(tracking_uri, output_dir)
    if uri.startswith(("http://", "https://")):
        _console().print(f"{uri} is a tracking server and serves the UI itself: open {uri}")
        return
    proc = serve_ui(uri, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, proc)
        _console().print(f"MLflow UI for {uri}: {url}  (Ctrl-C to stop)")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(proc)


def sync(
    run_dir: Annotated[str, typer.Argument(help="The run directory that holds the spool.")],
    tracking_uri: Annotated[
        str | None, typer.Option(help="Send to this store [default: the one the run used].")
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Upload what a run spooled while MLflow was unreachable (each record exactly once)."""
    from launcher.loggers.spool import replay_spool

    sent = replay_spool(run_dir, tracking_uri)
    _console().print(f"sent {sent} spooled records" if sent else "nothing left to sync")


def register(app: typer.Typer) -> None:
    """Add `runs`, `compare`, `ui` and `sync` to `app`."""
    for command in (runs, compare, ui, sync):
        app.command(command.__name__)(command)
