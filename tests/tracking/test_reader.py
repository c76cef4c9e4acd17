"""Run listing, comparison, curves, the UI server and the `runs`/`compare`/`ui`/`sync` commands.

python -m pytest tests/tracking/test_reader.py -x -q
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from launcher.cli.runs import register
from launcher.common.net import free_port
from launcher.errors import UserError
from launcher.loggers.mlflow import MLflowLogger
from launcher.tracking.reader import (
    compare_runs,
    default_tracking_uri,
    list_runs,
    plot_curves,
    resolve_tracking_uri,
    serve_ui,
    validate_tracking_uri,
)
from launcher.tracking.server import stop_server, wait_for_server

LOSSES = {"a": [1.0, 0.6, 0.4, 0.5], "b": [0.9, 0.7, 0.3, 0.2]}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """A local sqlite store with two finished runs, logged the way the trainer logs them."""
    out = tmp_path_factory.mktemp("outputs")
    ids = {}
    for name, precision, seed in (("a", "32-true", 1), ("b", "bf16-mixed", 2)):
        logger = MLflowLogger(
            "mnist",
            run_name=name,
            save_dir=str(out),
            log_system_metrics=False,
            tracking_uri=default_tracking_uri(str(out)),
        )
        logger.set_tags({"launcher.recipe": "mnist.py", "launcher.backend": "slurm"})
        logger.log_hyperparams(
            {
                "launch": {"nodes": 2, "devices_per_node": 4, "seed": seed},
                "trainer": {"precision": precision},
            }
        )
        for step, loss in enumerate(LOSSES[name]):
            logger.log_metrics({"train/loss": loss, "val_acc": 1 - loss}, step=step)
        logger.finalize("FINISHED")
        ids[name] = logger.run_id
    return default_tracking_uri(str(out)), ids


def test_list_runs_reports_what_the_trainer_logged(store):
    uri, ids = store
    rows = {row["name"]: row for row in list_runs(uri, experiment="mnist")}
    assert set(rows) == {"a", "b"}
    a = rows["a"]
    assert (a["run_id"], a["status"], a["recipe"], a["backend"]) == (
        ids["a"],
        "FINISHED",
        "mnist.py",
        "slurm",
    )
    assert (a["nodes_x_gpus"], a["precision"]) == ("2x4", "32-true")
    assert a["metrics"]["val_acc"].final == pytest.approx(0.5)
    assert a["metrics"]["train/loss"].best == pytest.approx(0.4)
    assert a["metrics"]["train/loss"].best_step == 2 and a["duration_s"] >= 0
    with pytest.raises(UserError, match="no experiment 'nope'.*mnist"):
        list_runs(uri, experiment="nope")


def test_compare_shows_differing_params_and_final_and_best(store):
    uri, ids = store
    result = compare_runs(uri, [ids["a"], ids["b"][:8]])  # a unique prefix is enough
    assert [r["name"] for r in result.runs] == ["a", "b"]
    assert result.params == {
        "launch.seed": ["1", "2"],
        "trainer.precision": ["32-true", "bf16-mixed"],
    }
    loss_a, loss_b = result.metrics["train/loss"]
    assert (loss_a.final, loss_a.best, loss_a.mode) == (0.5, 0.4, "min")
    assert (loss_b.final, loss_b.best, loss_b.best_step) == (0.2, 0.2, 3)
    assert result.metrics["val_acc"][0].mode == "max"
    assert result.metrics["val_acc"][0].best == pytest.approx(0.6)


def test_compare_rejects_unknown_runs_and_metrics(store):
    uri, ids = store
    with pytest.raises(UserError, match="run 'feedbeef' does not exist.*launch runs"):
        compare_runs(uri, [ids["a"], "feedbeef"])
    with pytest.raises(UserError, match=r"no run has metric\(s\) \['val_loss'\].*val_acc"):
        compare_runs(uri, [ids["a"], ids["b"]], metrics=["val_loss"])


def test_plot_curves_draws_a_line_per_run(store, tmp_path):
    import numpy as np
    from matplotlib.image import imread

    uri, ids = store
    path = plot_curves(
        uri, [ids["a"], ids["b"]], ["train/loss", "val_acc"], str(tmp_path / "c.png")
    )
    image = imread(path)[..., :3]
    assert image.shape[0] > 300 and len(np.unique(image.reshape(-1, 3), axis=0)) > 20
    for colour in ("#1f77b4", "#ff7f0e"):  # matplotlib's first two line colours: both runs
        rgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        # The legend alone draws ~120 such pixels; the curves draw well over 500.
        assert (np.abs(image - rgb).max(axis=-1) < 0.02).sum() > 500, colour


def test_uri_resolution_and_validation(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, str(tmp_path)) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert resolve_tracking_uri(None, str(tmp_path)) == "http://tracking:5000"
    assert resolve_tracking_uri("file:///x/mlruns", str(tmp_path)) == "file:///x/mlruns"
    for bad, hint in (
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite://rel.db", "sqlite:////"),
        ("http://", "no host"),
        ("s4://bucket", "unknown scheme"),
    ):
        with pytest.raises(UserError, match=hint):
            validate_tracking_uri(bad)


def test_serve_ui_answers_on_localhost(store):
    uri, _ = store
    port = free_port()
    proc = serve_ui(uri, port=port)
    try:
        wait_for_server(f"http://127.0.0.1:{port}", proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()
        with pytest.raises(UserError, match="busy"):
            serve_ui(uri, port=port)
    finally:
        stop_server(proc)
    assert proc.poll() is not None
    with pytest.raises(UserError, match="serves the UI"):
        serve_ui("http://127.0.0.1:5000")


def _visible_text(dom: str) -> str:
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in found.read_text().split()] if found.exists() else []


@pytest.mark.slow
def test_launch_ui_opens_the_runs_table_in_a_browser_and_stops_on_sigterm(store, chromium):
    """The page a person lands on lists both runs (MLflow's runs table, not the GenAI
    traces overview an untagged experiment opens on), and SIGTERM to `launch ui` stops
    its server instead of orphaning it on the port."""
    uri, ids = store
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from launcher.cli import main; main()", "ui", "--port",
         str(port), "--tracking-uri", uri],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "runs of" in line:
                break
        runs_url = lines[-1].split(": ", 1)[1].strip()
        assert runs_url.startswith(f"http://127.0.0.1:{port}/#/experiments/"), lines
        servers = _children(proc.pid)
        assert servers, "launch ui started no server process"
        page = _visible_text(chromium(runs_url))
        assert "Training runs" in page and "2 matching runs" in page, page[:2000]
        assert " a " in page and " b " in page, page[:2000]  # the two runs' names, in rows
        assert "Detect Issues" not in page, page[:2000]
        # The run's page lists the user's tags, not our placeholder bookkeeping tag.
        experiment = re.search(r"/experiments/(\d+)", runs_url).group(1)
        run_page = _visible_text(chromium(f"{runs_url.split('#')[0]}#/experiments/"
                                          f"{experiment}/runs/{ids['a']}"))  # fmt: skip
        assert "launcher.recipe" in run_page and "mnist.py" in run_page, run_page[:3000]
        assert "runRef" not in run_page and "pending-" not in run_page, run_page[:3000]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert all(not Path(f"/proc/{pid}").exists() for pid in servers), "server left running"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "port still served"


@pytest.fixture
def cli() -> tuple[typer.Typer, CliRunner]:
    app = typer.Typer()
    register(app)
    return app, CliRunner(env={"COLUMNS": "250"})


def test_runs_and_compare_commands(store, cli, tmp_path):
    (uri, ids), (app, runner) = store, cli
    result = runner.invoke(app, ["runs", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert (
        ids["a"][:8] in result.output and "bf16-mixed" in result.output and "2x4" in result.output
    )
    png = tmp_path / "curves.png"
    result = runner.invoke(
        app,
        [
            "compare",
            ids["a"],
            ids["b"],
            "--metric",
            "train/loss",
            "--plot",
            str(png),
            "--tracking-uri",
            uri,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trainer.precision" in result.output and "0.4 @2" in result.output
    assert png.stat().st_size > 10_000
    result = runner.invoke(app, ["compare", ids["a"], "--tracking-uri", uri])
    assert isinstance(result.exception, UserError)
    result = runner.invoke(app, ["ui", "--tracking-uri", "http://127.0.0.1:5999"])
    assert result.exit_code == 0 and "serves the UI itself" in result.output


def test_runs_without_a_store_and_sync_without_a_spool_are_user_errors(cli, tmp_path):
    app, runner = cli
    result = runner.invoke(app, ["runs", "--output-dir", str(tmp_path)])
    assert isinstance(result.exception, UserError) and "does not exist" in str(result.exception)
    result = runner.invoke(app, ["sync", str(tmp_path)])
    assert isinstance(result.exception, UserError) and "nothing to sync" in str(result.exception)
    assert not Path(tmp_path / "mlflow.db").exists()  # listing never creates a store


@pytest.mark.parametrize("preset, expected", [(None, "true"), ("false", "false")])
def test_importing_launcher_turns_mlflow_telemetry_off(preset, expected):
    """MLflow 3 would phone home from every training process; ours talk to their store only."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    if preset is not None:
        env["MLFLOW_DISABLE_TELEMETRY"] = preset  # a user's explicit choice wins
    code = (
        "import launcher, os; from mlflow.telemetry.utils import is_telemetry_disabled; "
        "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], is_telemetry_disabled())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    value, disabled = out.stdout.split()
    assert value == expected
    if preset is None:
        assert disabled == "True"


@pytest.mark.parametrize("columns", [80, 120])
def test_runs_print_one_line_per_run_with_whole_ids(store, columns):
    (uri, ids), runner = store, CliRunner(env={"COLUMNS": str(columns)})
    app = typer.Typer()
    register(app)
    result = runner.invoke(app, ["runs", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    header, *lines = result.output.strip("\n").split("\n")
    assert len(lines) == 2 and all(len(line) <= columns for line in [header, *lines])
    for name, run_id in ids.items():
        (line,) = [ln for ln in lines if run_id in ln.split()]
        assert line.split()[1:3] == [name, "SUCCEEDED"]  # MLflow's FINISHED, in the jobs' word
    assert "FINISHED" not in result.output and "│" not in result.output
    assert ("precision" in header) == (columns == 120)  # a wider screen shows more columns


def test_runs_json_has_full_ids_states_times_and_metrics(store, cli):
    (uri, ids), (app, runner) = store, cli
    result = runner.invoke(app, ["runs", "--tracking-uri", uri, "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert {name: row["run_id"] for name, row in rows.items()} == ids
    assert rows["a"]["state"] == "SUCCEEDED" and rows["a"]["mlflow_status"] == "FINISHED"
    assert rows["a"]["start_time"] and rows["a"]["end_time"] and rows["a"]["duration_s"] >= 0
    assert rows["a"]["metrics"]["train/loss"] == {
        "final": 0.5, "final_step": 3, "best": 0.4, "best_step": 2, "mode": "min"
    }  # fmt: skip


def test_compare_takes_run_names_prefixes_and_prints_json(store, cli):
    (uri, ids), (app, runner) = store, cli
    result = runner.invoke(app, ["compare", "a", ids["b"][:6], "--tracking-uri", uri, "--json"])
    assert result.exit_code == 0, result.output
    a, b = json.loads(result.output)
    assert (a["run_id"], b["run_id"]) == (ids["a"], ids["b"])
    assert a["params"] == {"launch.seed": "1", "trainer.precision": "32-true"}
    assert b["metrics"]["train/loss"]["best"] == 0.2 and b["state"] == "SUCCEEDED"
    text = CliRunner(env={"COLUMNS": "80"}).invoke(
        app, ["compare", "a", "b", "--tracking-uri", uri]
    )
    assert text.exit_code == 0, text.output
    assert all(len(line) <= 80 for line in text.output.splitlines()), text.output
    assert ids["a"] in text.output.split() and ids["b"] in text.output.split()
    assert "0.4 @2" in text.output


def test_compare_takes_job_handles_and_lists_candidates_when_ambiguous(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from backends.base import Job
    from backends.registry import JobRegistry
    from launcher.cli.app import app
    from launcher.spec import LaunchSpec

    monkeypatch.setenv("LAUNCHER_HOME", str(tmp_path / "home"))
    uri = default_tracking_uri(str(tmp_path))
    client = MlflowClient(uri)
    experiment = client.create_experiment("sweep")
    run_ids = []
    for i in range(17):  # 17 ids over 16 hex digits: two share a first character
        run = client.create_run(experiment, run_name=f"sweep-{i}")
        client.log_metric(run.info.run_id, "val_loss", 1.0 / (i + 1), step=0)
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    spec = LaunchSpec("r.py", str(tmp_path / "sweep" / "sweep-3"), "sweep-3", "sweep")
    JobRegistry().record(Job("slurm://4242", "slurm", spec.run_dir, "r.py", "sweep-3"), spec)
    runner = CliRunner(env={"COLUMNS": "120"})
    by_handle = runner.invoke(app, ["compare", "slurm://4242", "sweep-5", "--tracking-uri", uri, "--json"])  # fmt: skip
    assert by_handle.exit_code == 0, by_handle.output
    assert [r["run_id"] for r in json.loads(by_handle.output)] == [run_ids[3], run_ids[5]]
    first = next(c for c in "0123456789abcdef" if sum(r[0] == c for r in run_ids) > 1)
    shared = [r for r in run_ids if r.startswith(first)]
    ambiguous = runner.invoke(app, ["compare", first, "sweep-5", "--tracking-uri", uri])
    assert ambiguous.exit_code == 2 and "is ambiguous" in ambiguous.output
    assert all(run_id in ambiguous.output for run_id in shared)


@pytest.mark.parametrize("verbose", [False, True])
def test_mlflow_store_setup_lines_are_quiet_unless_verbose(tmp_path, verbose):
    """A first run in a fresh store must not print MLflow's "Creating initial MLflow database
    tables..." lines through the progress display; `launch --verbose` shows them."""
    script = (
        "from launcher.loggers.mlflow import MLflowLogger\n"
        f"lg = MLflowLogger('e', save_dir={str(tmp_path)!r}, log_system_metrics=False)\n"
        "lg.log_metrics({'x': 1.0}, step=0)\n"
        "lg.finalize('FINISHED')\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("LAUNCHER_VERBOSE", "MLFLOW_TRACKING_URI")
    }
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # no template store yet: MLflow migrates
    if verbose:
        env["LAUNCHER_VERBOSE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mlflow.db").exists()
    assert ("Creating initial MLflow database tables" in done.stderr) is verbose, done.stderr
