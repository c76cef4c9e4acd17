"""What the commands print: lines that fit 80 and 120 columns, `--json`, one identity, help.

Jobs are recorded in a real registry (`LAUNCHER_HOME` under tmp_path) as the local backend
records them; runs live in a real MLflow sqlite store under tmp_path. Width checks run the
real console script in a pseudo-terminal of the given size.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends.base import Job, JobState
from backends.registry import JobRegistry
from launcher.cli.app import app
from launcher.cli.identity import MLFLOW_STATES
from launcher.cli.output import Column, fit_rows
from launcher.spec import LaunchSpec

REPO = Path(__file__).resolve().parents[2]
NAMES = ["digits-20261201-074412", "digits-lr0.1-batch64-20261201-080001", "tiny-1"]
RECIPE = """
from torch import nn
import launcher


class TinyModel(launcher.Module):
    def __init__(self, hidden_dim: int = 8, lr: float = 1e-3):
        super().__init__()
        self.net = nn.Linear(4, hidden_dim)
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAUNCHER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def record_local_job(root: Path, name: str, state: JobState = JobState.SUCCEEDED) -> Job:
    """A finished local job, recorded the way `launch` records one."""
    run_dir = root / "outputs" / "digits" / name
    spec = LaunchSpec(recipe=str(root / "digits.py"), run_dir=str(run_dir), name=name,
                      experiment="digits")  # fmt: skip
    job = Job(f"local://{name}", "local", str(run_dir), spec.recipe, name,
              extra={"state": state.value, "exit_code": 0})  # fmt: skip
    JobRegistry().record(job, spec)
    return job


def launch(*args: str, columns: int | None = None):
    env = {"COLUMNS": str(columns)} if columns else {}
    return CliRunner(env=env).invoke(app, list(args))


def launch_in_terminal(args: list[str], columns: int, cwd: Path) -> str:
    """Run `launch ARGS` with stdout on a pseudo-terminal `columns` wide; return the screen."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(REPO)
    code = "from launcher.cli.app import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                            stdin=terminal, stdout=terminal, stderr=subprocess.PIPE)  # fmt: skip
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    os.close(controller)
    return b"".join(chunks).decode().replace("\r\n", "\n")


# -- fitting -----------------------------------------------------------------------------------


def test_fit_rows_drops_and_shrinks_but_never_cuts_a_kept_column() -> None:
    columns = [Column("id", keep=True), Column("state"), Column("note", drop=1, shrink=True),
               Column("extra", drop=2)]  # fmt: skip
    rows = [{"id": "x" * 40, "state": "RUNNING", "note": "n" * 60, "extra": "e" * 10}]
    wide = fit_rows(columns, rows, None)
    assert wide[1].split() == ["x" * 40, "RUNNING", "n" * 60, "e" * 10]
    cut = fit_rows(columns, rows, 80)  # cutting the note is enough
    assert all(len(line) <= 80 for line in cut) and cut[1].split()[-1] == "e" * 10
    assert "x" * 40 in cut[1] and "…" in cut[1]
    narrow = fit_rows(columns, rows, 70)  # the note at its narrowest is not: extra goes
    assert all(len(line) <= 70 for line in narrow)
    assert "extra" not in narrow[0] and "x" * 40 in narrow[1] and "…" in narrow[1]
    tiny = fit_rows(columns, rows, 20)  # an id longer than the screen is still whole
    assert tiny[1].split() == ["x" * 40, "RUNNING"]


# -- jobs and status -----------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 120])
def test_jobs_and_status_print_one_whole_line_per_job_in_a_terminal(home: Path, columns: int):
    jobs = [record_local_job(home, name) for name in NAMES]
    for argv in (["jobs"], ["status", *NAMES]):
        screen = launch_in_terminal(argv, columns, cwd=home)
        lines = screen.strip("\n").split("\n")
        assert len(lines) == 1 + len(jobs), screen  # a header, then one line per job
        assert all(len(line) <= columns for line in lines), screen
        for job in jobs:
            (line,) = [ln for ln in lines if job.handle in ln.split()]
            assert job.name in line and JobState.SUCCEEDED.value in line.split()
        assert not re.search("[│┃━─╭╰]", screen)
    assert ("name" in lines[0].split()) == (columns == 120)  # the wider screen shows more


def test_jobs_and_status_json_carry_full_handles_ids_and_states(home: Path) -> None:
    jobs = [record_local_job(home, name) for name in NAMES]
    listed = json.loads(launch("jobs", "--json").output)
    assert [row["handle"] for row in listed] == [j.handle for j in reversed(jobs)]
    assert {row["id"] for row in listed} == set(NAMES)
    assert {row["state"] for row in listed} == {"SUCCEEDED"}
    assert all(row["run_dir"] and row["submitted_at"] for row in listed)
    (one,) = json.loads(launch("status", NAMES[1], "--json").output)
    assert one["handle"] == f"local://{NAMES[1]}" and one["name"] == NAMES[1]
    assert json.loads(launch("jobs", "--json").output)  # --json never prints "no jobs yet"


def test_piped_output_is_plain_and_wide(home: Path) -> None:
    record_local_job(home, NAMES[1])
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"PYTHONPATH": str(REPO)}
    code = "from launcher.cli.app import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "jobs"], cwd=home, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    header, line = done.stdout.strip().split("\n")
    assert header.split()[:3] == ["handle", "state", "name"] and "run" in header
    assert str(home / "outputs" / "digits" / NAMES[1]) in line  # nothing cut in a pipe
    assert not re.search("[│┃━─╭╰]", done.stdout)


# -- one identity --------------------------------------------------------------------------------


def make_run(tracking_uri: str, experiment: str, name: str, status: str = "FINISHED") -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=name)
    client.log_metric(run.info.run_id, "val_loss", 0.5, step=1)
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_a_job_is_found_by_its_mlflow_run_id_in_every_command(home: Path) -> None:
    from launcher.tracking.reader import default_tracking_uri

    job = record_local_job(home, NAMES[0])
    (Path(job.run_dir) / "logs").mkdir(parents=True)
    (Path(job.run_dir) / "logs" / "rank0.log").write_text("epoch 0 done\n")
    spec = LaunchSpec(recipe=job.recipe, run_dir=job.run_dir, name=job.name, experiment="digits")
    spec.write()
    run_id = make_run(default_tracking_uri(str(home / "outputs")), "digits", NAMES[0])
    for ref in (run_id, run_id[:8]):
        status = launch("status", ref)
        assert status.exit_code == 0, status.output
        assert job.handle in status.output and "SUCCEEDED" in status.output
    assert launch("logs", run_id[:10]).output == "epoch 0 done\n"
    cancel = launch("cancel", run_id)
    assert cancel.exit_code == 0 and "had already ended: SUCCEEDED" in cancel.output
    resume = launch("resume", run_id[:8], "--dry-run")
    assert resume.exit_code == 0 and job.run_dir in resume.output
    missing = launch("status", "feedbeef")
    assert missing.exit_code == 2 and "no job 'feedbeef'" in missing.output


def test_an_ambiguous_reference_lists_the_candidates(home: Path) -> None:
    for name in ("sweep-lr0.1", "sweep-lr0.01"):
        record_local_job(home, name)
    result = launch("status", "sweep-lr0.")
    assert result.exit_code == 2
    assert "local://sweep-lr0.1 (sweep-lr0.1)" in result.output
    assert "local://sweep-lr0.01 (sweep-lr0.01)" in result.output


def test_mlflow_states_use_the_job_words() -> None:
    assert {state.value for state in MLFLOW_STATES.values()} <= {s.value for s in JobState}
    assert MLFLOW_STATES["FINISHED"] == JobState.SUCCEEDED
    assert MLFLOW_STATES["KILLED"] == JobState.CANCELLED


# -- help and hints ------------------------------------------------------------------------------


COMMANDS = ["run", "resume", "jobs", "status", "logs", "cancel", "runs", "compare", "ui", "sync"]


def test_help_shows_value_names_examples_and_no_type_labels() -> None:
    for argv in [["--help"], *([name, "--help"] for name in COMMANDS)]:
        text = launch(*argv, columns=200).output
        assert not re.search(r"<(bool|str|int|list\[str\]|text|integer)>", text), (argv, text)
    top, run = launch("--help", columns=200).output, launch("run", "--help", columns=200).output
    assert "Examples:" in top and "launch recipes/digits.py" in top
    assert "Examples:" in run and "--set KEY=VALUE" in " ".join(run.split())
    assert "recipes/digits.py" in run and "examples/mnist.py" not in run
    assert run.count("./outputs") == 1  # the output-dir default, said once
    assert "$MLFLOW_TRACKING_URI" in launch("runs", "--help", columns=200).output
    assert "Usage: launch run [OPTIONS] RECIPE.py" in run


def test_version() -> None:
    import launcher

    result = launch("--version")
    assert result.exit_code == 0 and result.output.strip() == f"launch {launcher.__version__}"


def test_set_with_a_space_and_a_recipe_typo_get_hints(home: Path) -> None:
    (home / "recipes").mkdir()
    (home / "recipes" / "digits.py").write_text(textwrap.dedent(RECIPE))
    spaced = launch("recipes/digits.py", "--set", "lr", "0.01")
    assert spaced.exit_code == 2
    assert "use KEY=VALUE, e.g. --set lr=0.01" in spaced.output
    typo = launch("recipes/digit.py")
    assert typo.exit_code == 2 and "did you mean recipes/digits.py?" in typo.output
    folder = launch("recipe/digits.py")
    assert folder.exit_code == 2 and "did you mean recipes/digits.py?" in folder.output


# -- no litter -----------------------------------------------------------------------------------


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    "flags",
    [
        ["--accelerator", "cpu"],
        ["--accelerator", "cpu", "--devices", "2"],
        ["--backend", "slurm", "--accelerator", "cpu"],
        ["--backend", "ray", "--accelerator", "cpu", "--address", "http://127.0.0.1:9"],
    ],
)
def test_dry_run_writes_nothing(home: Path, flags: list[str]) -> None:
    (home / "tiny.py").write_text(textwrap.dedent(RECIPE))
    out = home / "outputs"
    (out / "earlier").mkdir(parents=True)
    before = listing(home)
    result = launch("tiny.py", "--name", "dry", "--dry-run", *flags)
    assert result.exit_code == 0, result.output
    assert str(out / "tiny" / "dry") in result.output
    assert listing(home) == before


def test_a_refused_submission_writes_nothing(home: Path) -> None:
    from launcher.common.net import free_port

    (home / "tiny.py").write_text(textwrap.dedent(RECIPE))
    (home / "outputs").mkdir()
    before = listing(home)
    started = time.monotonic()
    dead = f"http://127.0.0.1:{free_port()}"  # nobody listens: the Ray backend refuses
    result = launch("tiny.py", "--backend", "ray", "--accelerator", "cpu", "--address", dead)
    assert result.exit_code == 2 and "cannot reach the Ray cluster" in result.output
    assert listing(home) == before and time.monotonic() - started < 60
    assert JobRegistry().list() == []
