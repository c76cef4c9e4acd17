"""The `launch` command line.

    launch recipes/digits.py --max-epochs 2          # same as `launch run recipes/digits.py ...`
    launch recipes/digits.py --nodes 2 --gpus 8 --backend slurm --cluster my_cluster
    launch jobs | status JOB | logs JOB -f | cancel JOB | resume JOB
    launch sweep recipes/digits.py --grid lr=0.1,0.01 --metric val_acc   # then compare SWEEP
    launch --help | --version

Commands live in `launcher/cli/` (launch.py, sweep.py, jobs.py, runs.py) and hand off to library functions. A `UserError`
anywhere becomes `error: <message>` on stderr and exit code 2; `--debug` shows the traceback.
This module imports nothing heavy: `launch --help` never imports torch, mlflow, ray, submitit.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from functools import cache
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import launcher
from launcher.cli.options import DebugOption, plain_params, usage_pieces
from launcher.errors import USER_ERROR_EXIT_CODE, UserError

DEBUG_FLAG = "--debug"
DEFAULT_COMMAND = "run"
# Options that take a value or act before any command; leave argv alone when they appear.
_COMPLETION_FLAGS = ("--install-completion", "--show-completion")
# Where each command lives, in the order `launch --help` lists them. `main` imports only the
# module of the command it runs (`launch jobs` never imports the spec builder or MLflow's side).
COMMAND_MODULES = {
    "run": "launcher.cli.launch", "resume": "launcher.cli.launch",
    "sweep": "launcher.cli.sweep",
    "jobs": "launcher.cli.jobs", "status": "launcher.cli.jobs", "logs": "launcher.cli.jobs",
    "cancel": "launcher.cli.jobs",
    "runs": "launcher.cli.runs", "compare": "launcher.cli.runs", "ui": "launcher.cli.runs",
    "sync": "launcher.cli.runs",
}  # fmt: skip


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
        try:
            check_set_values(words)
        except UserError as exc:  # raised before any command runs, so `invoke` cannot see it
            if ctx.meta[DEBUG_FLAG]:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(USER_ERROR_EXIT_CODE) from None
        return super().parse_args(ctx, args)

    def get_params(self, ctx: Any) -> list[Any]:
        return plain_params(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*usage_pieces(self.get_params(ctx), self.options_metavar), "COMMAND [ARGS]..."]

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            if ctx.meta.get(DEBUG_FLAG):
                raise  # main() prints the traceback
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(USER_ERROR_EXIT_CODE) from None


def check_set_values(words: list[str]) -> None:
    """`--set lr 0.01` -> a `UserError` that shows `--set lr=0.01` (Click would only say
    "unexpected extra argument")."""
    for flag, key, value in zip(words, words[1:], words[2:], strict=False):
        if flag == "--set" and "=" not in key and not value.startswith("-"):
            raise UserError(f"--set {key} {value}: use KEY=VALUE, e.g. --set {key}={value}")


EXAMPLES = """Examples:

\b
    launch recipes/digits.py --max-epochs 2 --set lr=0.01
    launch recipes/digits.py --accelerator cpu --devices 2 --dry-run
    launch recipes/digits.py --backend slurm --cluster local_slurm --nodes 2 --wait
    launch jobs
    launch logs digits-20250101-120000 --follow
    launch runs --json
    launch compare RUN_A RUN_B --metric val_loss
    launch sweep recipes/digits.py --grid lr=0.1,0.01 --metric val_acc --max-parallel 2
"""


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"launch {launcher.__version__}")
        raise typer.Exit(0)


def _set_verbose(value: bool) -> None:
    if value:  # read by every process of the run: workers inherit the environment
        os.environ["LAUNCHER_VERBOSE"] = "1"


def _root(
    debug: DebugOption = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            callback=_set_verbose,
            is_eager=True,
            help="Show the libraries' own log lines (MLflow, submitit, Ray), hidden by default.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Turn a Lightning-style recipe into a running job: locally, on SLURM or on Ray.

    `launch RECIPE.py [OPTIONS]` is short for `launch run RECIPE.py [OPTIONS]`.
    """


def build_app(commands: tuple[str, ...] = tuple(COMMAND_MODULES)) -> typer.Typer:
    """The `launch` app with `commands` (default: all), each imported from its module."""
    built = typer.Typer(
        cls=LauncherGroup,
        name="launch",
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
        epilog=EXAMPLES,
    )
    built.callback()(_root)
    # Each module registers its own commands (registering is cheap: Typer converts them to
    # Click commands only when the app runs); those not asked for are dropped before that.
    for module in dict.fromkeys(COMMAND_MODULES[name] for name in commands):
        importlib.import_module(module).register(built)
    built.registered_commands = [c for c in built.registered_commands if c.name in commands]
    return built


@cache
def _full_app() -> typer.Typer:
    return build_app()


def __getattr__(name: str) -> Any:
    if name == "app":  # `from launcher.cli.app import app`: every command (tests, completion)
        return _full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _app_for(args: list[str]) -> typer.Typer:
    """Only the command `args` run, when they name one; else (help, --version) every one."""
    words = default_to_run(list(args), COMMAND_MODULES)
    first_word = next((arg for arg in words if not arg.startswith("-")), None)
    if first_word not in COMMAND_MODULES:
        return _full_app()
    return build_app((first_word,))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`launch = launcher.cli:main`)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        _app_for(args)(args=args, prog_name="launch")
    except UserError as exc:  # only reaches here under --debug
        traceback.print_exc()
        typer.echo(f"error: {exc}", err=True)
        sys.exit(USER_ERROR_EXIT_CODE)


if __name__ == "__main__":
    main()
