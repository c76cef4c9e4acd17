"""Option aliases shared by several `launch` commands, so they read the same everywhere.

def logs(job: JobArgument, debug: DebugOption = False) -> None: ...

Options that take a value name it in capitals (`--rank N`, `--set KEY=VALUE`); flags show no
type at all: `LauncherCommand` (every command's class) hides Typer's `<bool>` and `<str>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

if TYPE_CHECKING:  # Typer's vendored click, whose classes its commands and params extend
    from typer import _click as click

DebugOption = Annotated[
    bool,
    typer.Option("--debug", help="Show the full traceback of errors, including user errors."),
]
JobArgument = Annotated[
    str,
    typer.Argument(
        metavar="JOB",
        help="A run name, an MLflow run id, a handle (slurm://4242), or a unique prefix of one.",
        show_default=False,
    ),
]
WaitOption = Annotated[
    bool,
    typer.Option("--wait", help="Follow the logs until the job ends; exit 0 on success."),
]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print exactly what would be submitted (sbatch script, Ray job, worker commands); "
        "write nothing.",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print a JSON list of objects (full ids) for scripts."),
]


class _PlainArgument(TyperArgument):
    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None  # the metavar (JOB, RECIPE.py) already says what goes there


class _PlainOption(TyperOption):
    def display_type_rich(self, ctx: click.Context) -> str | None:
        if self.is_flag:
            return None  # `--wait`, not `--wait <bool>`
        return self.metavar or (self.name or "value").upper()


def plain_params(params: list[click.Parameter]) -> list[click.Parameter]:
    """Show value names (`--rank N`, `--set KEY=VALUE`) instead of Typer's type labels."""
    for param in params:
        if type(param) is TyperArgument:
            param.__class__ = _PlainArgument  # same state, only the help display differs
        elif type(param) is TyperOption:
            param.__class__ = _PlainOption
    return params


def usage_pieces(params: list[click.Parameter], options_metavar: str | None) -> list[str]:
    """The usage line: `[OPTIONS] RECIPE.py`, `[OPTIONS] JOB...` (no braces, no types)."""
    pieces = [options_metavar] if options_metavar else []
    for param in params:
        if isinstance(param, TyperArgument):
            name = param.metavar or (param.name or "ARG").upper()
            pieces.append(name if param.required else f"[{name}]")
    return pieces


class LauncherCommand(TyperCommand):
    """Every `launch` command: help shows value names, never `<bool>` or `<list[str]>`."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return plain_params(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return usage_pieces(self.get_params(ctx), self.options_metavar)
