"""The `launch` command line: the only code that knows both `launcher` and `backends`.

    app.py            the Typer app: the default `run` command, `UserError` -> exit code 2,
                      `--version`, the `--set KEY VALUE` hint
    options.py        option aliases shared by several commands; `LauncherCommand` (help
                      shows value names, not type labels)
    launch.py         run, resume            jobs.py   jobs, status, logs, cancel
    runs.py           runs, compare, ui, sync (MLflow)
    output.py         one line per item that fits the terminal, or `--json`
    identity.py       a run name, MLflow run id or job handle -> the job or run; MLflow's
                      run states in the job states' words
    spec_builder.py   flags + cluster YAML + `--set` -> one `LaunchSpec`
    recipe.py         find the Module/DataModule in a recipe file (workers use it too)
    recipe_static.py  the same checks by reading the file (SLURM/Ray submissions: no torch)
    cluster_config.py cluster YAML -> ClusterConfig (each backend declares its own section)

May import anything in `launcher` and `backends`; nothing in `launcher` imports it except the
worker (for recipe loading). `main` is imported lazily so `launcher.cli.recipe` stays light.
"""

from __future__ import annotations

from typing import Any


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`launch = launcher.cli:main`)."""
    from launcher.cli.app import main as app_main

    app_main(argv)


def __getattr__(name: str) -> Any:
    if name == "app":
        from launcher.cli.app import app

        return app
    raise AttributeError(f"module 'launcher.cli' has no attribute {name!r}")
