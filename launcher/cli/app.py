"""The `launch` command line.

    launch examples/mnist.py --max-epochs 2          # same as `launch run examples/mnist.py ...`
    launch examples/mnist.py --nodes 2 --gpus 8 --backend slurm --cluster my_cluster
    launch jobs | status JOB | logs JOB -f | cancel JOB | resume JOB
    launch --help

Commands live in `launcher/cli/` (launch.py, jobs.py, runs.py) and hand off to library functions. A `UserError`
anywhere becomes `error: <message>` on stderr and exit code 2; `--debug` shows the traceback.
This module imports nothing heavy: `launch --help` never imports torch, mlflow, ray, submitit.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from launcher.cli import jobs, launch, runs
from launcher.cli.options import DebugOption
from launcher.errors import USER_ERROR_EXIT_CODE, UserError

DEBUG_FLAG = "--debug"
DEFAULT_COMMAND = "run"
# Options that take a value or act before any command; leave argv alone when they appear.
_COMPLETION_FLAGS = ("--install-completion", "--show-completion")


def default_to_run(args: list[str], commands: Any) -> list[str]:
    """`launch RECIPE.py ...` -> `launch run RECIPE.py ...`: run is the default command.

    Example: `default_to_run(["r.py", "--nodes", "2"], {"run", "jobs"})[0] == "run"`.
    """
    if any(arg in _COMPLETION_FLAGS for arg in args):
        return args
    first_word = next((arg for arg in args if not arg.startswith("-")), None)
    if first_word is None or first_word in commands:
        return args
    return [DEFAULT_COMMAND, *args]


class LauncherGroup(TyperGroup):
    """Adds the default command and turns `UserError`s into one line and exit code 2."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = default_to_run(list(args), self.commands)
        words = args[: args.index("--")] if "--" in args else args
        ctx.meta[DEBUG_FLAG] = DEBUG_FLAG in words
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            if ctx.meta.get(DEBUG_FLAG):
                raise  # main() prints the traceback
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(USER_ERROR_EXIT_CODE) from None


app = typer.Typer(
    cls=LauncherGroup,
    name="launch",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(debug: DebugOption = False) -> None:
    """Turn a Lightning-style recipe into a running job: locally, on SLURM or on Ray.

    `launch RECIPE.py [OPTIONS]` is short for `launch run RECIPE.py [OPTIONS]`.
    """


launch.register(app)
jobs.register(app)
runs.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`launch = launcher.cli:main`)."""
    try:
        app(args=argv, prog_name="launch")
    except UserError as exc:  # only reaches here under --debug
        traceback.print_exc()
        typer.echo(f"error: {exc}", err=True)
        sys.exit(USER_ERROR_EXIT_CODE)


if __name__ == "__main__":
    main()
