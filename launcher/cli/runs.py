"""`launch runs`, `launch compare`, `launch ui`, `launch sync`: the MLflow side of the CLI.

    launch runs --experiment digits            # one line per run; --json for scripts
    launch compare 3f2a9c1d digits-lr0.1 slurm://4242 --metric val_loss --plot curves.png
    launch ui --port 5000
    launch sync outputs/mnist/run-1

The commands parse flags and print; the work is in `launcher.tracking.reader` and
`launcher.loggers.spool.replay_spool`.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from backends.registry import JobRegistry
from launcher.cli.identity import job_aliases, run_state
from launcher.cli.options import DebugOption, JsonOption, LauncherCommand
from launcher.cli.output import Column, fit_rows, output_width, print_json, print_rows
from launcher.errors import UserError
from launcher.tracking.reader import Comparison, MetricSummary

if TYPE_CHECKING:
    from rich.console import Console

TrackingUriOption = Annotated[
    str | None,
    typer.Option(
        metavar="URI",
        help="The MLflow store (default: $MLFLOW_TRACKING_URI, else DIR/mlflow.db of --output-dir).",
    ),
]
OutputDirOption = Annotated[
    str,
    typer.Option(metavar="DIR", help="Where runs and the local MLflow store live."),
]
DEFAULT_OUTPUT_DIR = "./outputs"
RUN_COLUMNS = (
    Column("run id", keep=True),
    Column("name", keep=True),
    Column("state"),
    Column("duration", drop=2),
    Column("metrics (final)", drop=1, shrink=True, min_width=30),
    Column("size", drop=3),
    Column("precision", drop=4),
    Column("backend", drop=5),
    Column("recipe", drop=6),
    Column("experiment", drop=7),
)


def _console() -> Console:
    from rich.console import Console

    return Console()


def _uri(tracking_uri: str | None, output_dir: str) -> str:
    from launcher.tracking.reader import resolve_tracking_uri

    return resolve_tracking_uri(tracking_uri, output_dir)


def _summary(s: MetricSummary | None) -> str:
    if s is None:
        return "-"
    return f"{s.final:.4g} @{s.final_step} / {s.mode} {s.best:.4g} @{s.best_step}"


def _summary_json(s: MetricSummary | None) -> dict[str, Any] | None:
    return dataclasses.asdict(s) if s is not None else None


def _iso(epoch_s: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(epoch_s)) if epoch_s else None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )


def runs(
    experiment: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only this experiment.")
    ] = None,
    tracking_uri: TrackingUriOption = None,
    output_dir: OutputDirOption = DEFAULT_OUTPUT_DIR,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """List recent runs, one line each: id, name, state, duration, key metrics (--json: all)."""
    from launcher.tracking.reader import list_runs

    rows = list_runs(_uri(tracking_uri, output_dir), experiment)
    if as_json:
        print_json(
            [
                {
                    "run_id": row["run_id"],
                    "name": row["name"],
                    "experiment": row["experiment"],
                    "state": run_state(row["status"], row["state_tag"]).value,
                    "mlflow_status": row["status"],
                    "recipe": row["recipe"],
                    "backend": row["backend"],
                    "nodes_x_gpus": row["nodes_x_gpus"],
                    "precision": row["precision"],
                    "requeues": row["requeues"],
                    "start_time": _iso(row["start_time"]),
                    "end_time": _iso(row["end_time"]),
                    "duration_s": row["duration_s"],
                    "metrics": {k: _summary_json(m) for k, m in row["metrics"].items()},
                }
                for row in rows
            ]
        )
        return
    if not rows:
        typer.echo("no runs yet; start one with: launch RECIPE.py")
        return
    print_rows(
        RUN_COLUMNS,
        [
            {
                "run id": row["run_id"],
                "name": row["name"],
                "state": run_state(row["status"], row["state_tag"]).value,
                "duration": _duration(row["duration_s"]),
                "metrics (final)": " ".join(
                    f"{k}={m.final:.4g}" for k, m in row["metrics"].items() if m is not None
                )
                or "-",
                "size": row["nodes_x_gpus"],
                "precision": row["precision"] or "-",
                "backend": row["backend"] or "-",
                "recipe": row["recipe"] or "-",
                "experiment": row["experiment"],
            }
            for row in rows
        ],
    )


def compare(
    run_ids: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN...",
            help="Two or more runs: run ids (or unique prefixes), run names or job handles; "
            "or one sweep.",
        ),
    ],
    metric: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="Metric to compare (repeat; default: all)."),
    ] = None,
    plot: Annotated[
        str | None, typer.Option(metavar="FILE.png", help="Also write a PNG of the curves here.")
    ] = None,
    tracking_uri: TrackingUriOption = None,
    output_dir: OutputDirOption = DEFAULT_OUTPUT_DIR,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Show runs side by side: the params that differ, final and best value of each metric.

    One line per run (A, B, ...), then one line per param and per metric.
    """
    from launcher.cli.sweep import compare_sweep, find_sweep
    from launcher.tracking.reader import compare_runs, plot_curves

    if len(run_ids) == 1 and (sweep := find_sweep(run_ids[0], JobRegistry())) is not None:
        compare_sweep(sweep, as_json, plot)  # its trials, sorted by the sweep's objective
        return
    if len(run_ids) < 2:
        raise UserError("compare needs two or more runs; list them with `launch runs`")
    uri = _uri(tracking_uri, output_dir)
    result = compare_runs(uri, run_ids, metric or None, aliases=job_aliases(run_ids, JobRegistry()))
    if as_json:
        print_json(
            [
                {
                    "run_id": run["run_id"],
                    "name": run["name"],
                    "state": run_state(run["status"]).value,
                    "params": {name: values[i] for name, values in result.params.items()},
                    "metrics": {k: _summary_json(s[i]) for k, s in result.metrics.items()},
                }
                for i, run in enumerate(result.runs)
            ]
        )
    else:
        _print_comparison(result)
    if plot:
        path = plot_curves(uri, [r["run_id"] for r in result.runs], list(result.metrics), plot)
        typer.echo(f"curves written to {path}")


def _print_comparison(result: Comparison) -> None:
    """Runs as A, B, ... (full ids), then params and metrics as lines with a column per run."""
    labels = [_label(i) for i in range(len(result.runs))]
    print_rows(
        (Column(""), Column("run id", keep=True), Column("name", keep=True), Column("state")),
        [
            {"": label, "run id": run["run_id"], "name": run["name"],
             "state": run_state(run["status"]).value}
            for label, run in zip(labels, result.runs, strict=True)
        ],
    )  # fmt: skip
    if result.params:
        typer.echo("")
        print_rows(
            [Column("param", keep=True), *(Column(label, shrink=True) for label in labels)],
            [
                {
                    "param": name,
                    **{k: "-" if v is None else v for k, v in zip(labels, values, strict=True)},
                }
                for name, values in result.params.items()
            ],
        )
    if result.metrics:
        typer.echo("")
        # Whole numbers or none: the long form when every line fits, else final / best only.
        for header, summary in (
            ("metric: final @step / best @step", _summary),
            ("metric: final / best", _short_summary),
        ):
            columns = [Column(header, keep=True), *(Column(label) for label in labels)]
            rows = [
                {header: key, **{k: summary(s) for k, s in zip(labels, summaries, strict=True)}}
                for key, summaries in result.metrics.items()
            ]
            width = output_width()
            lines = fit_rows(columns, rows, width)
            if width is None or all(len(line) <= width for line in lines):
                break
        for line in lines:
            typer.echo(line)


def _short_summary(s: MetricSummary | None) -> str:
    return "-" if s is None else f"{s.final:.4g} / {s.best:.4g}"


def _label(index: int) -> str:
    """A, B, ..., Z, AA, AB, ...: short column names that stand for runs."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def ui(
    port: Annotated[int, typer.Option(metavar="PORT", help="Port on 127.0.0.1.")] = 5000,
    tracking_uri: TrackingUriOption = None,
    output_dir: OutputDirOption = DEFAULT_OUTPUT_DIR,
    debug: DebugOption = False,
) -> None:
    """Serve the MLflow UI on http://127.0.0.1:PORT until Ctrl-C."""
    from launcher.tracking.reader import newest_experiment, serve_ui
    from launcher.tracking.server import stop_server, wait_for_server

    uri = _uri(tracking_uri, output_dir)
    if uri.startswith(("http://", "https://")):
        _console().print(f"{uri} is a tracking server and serves the UI itself: open {uri}")
        return
    newest = newest_experiment(uri)
    proc = serve_ui(uri, port)
    url = f"http://127.0.0.1:{port}"
    # SIGTERM (a closed terminal's supervisor, `kill`) must stop the server too, not orphan it.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        wait_for_server(url, proc)
        _console().print(f"MLflow UI for {uri}: {url}  (Ctrl-C to stop)")
        if newest is not None:
            experiment_id, name = newest
            _console().print(f"runs of {name!r}: {url}/#/experiments/{experiment_id}/runs")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(proc)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def sync(
    run_dir: Annotated[
        str, typer.Argument(metavar="RUN_DIR", help="The run directory that holds the spool.")
    ],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            metavar="URI",
            help="Send to this store (default: $MLFLOW_TRACKING_URI, else the one the run used).",
        ),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Upload what a run spooled while MLflow was unreachable (each record exactly once)."""
    import os

    from launcher.loggers.spool import replay_spool

    # As every other command: the flag, else $MLFLOW_TRACKING_URI, else what the run used.
    sent = replay_spool(run_dir, tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
    _console().print(f"sent {sent} spooled records" if sent else "nothing left to sync")


def register(app: typer.Typer) -> None:
    """Add `runs`, `compare`, `ui` and `sync` to `app`."""
    for command in (runs, compare, ui, sync):
        app.command(command.__name__, cls=LauncherCommand)(command)
