"""Option aliases shared by several `launch` commands, so they read the same everywhere.

def logs(job: JobArgument, debug: DebugOption = False) -> None: ...

Options that take a value name it in capitals (`--rank N`, `--set KEY=VALUE`); flags show no
type at all: `LauncherCommand` (every command's class) hides Typer's `<bool>` and `<str>`.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
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


_PLAIN_TYPES = (str, int, float, bool)
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class _AsGiven(RuntimeParam):
    """Typer's coercion without pydantic for values that already have their type.

    Typer 0.29 converts every parameter's value, defaults included, through a pydantic
    TypeAdapter: importing pydantic alone costs `launch jobs` 0.2-0.3 s. A `str` given for a
    `str` option, an `int` default of an `int` option, a list of strings for `list[str]` need
    no conversion; anything else (a number typed as text, bounds, choices, paths) goes to
    Typer's own coercion, so its values and error messages stay Typer's.
    """

    descriptor: TypeDescriptor

    def _coerce_value(self, value: Any, param: Any, ctx: click.Context) -> Any:
        if _fits(value, self.annotation, self.descriptor):
            return list(value) if isinstance(value, tuple) else value
        if (
            isinstance(value, str)
            and _INTEGER.fullmatch(value)
            and _fits(0, self.annotation, self.descriptor)
        ):
            return int(value)  # `--limit 5`: what Typer makes of it too
        return build_runtime_param(self.descriptor).coerce(value, param=param, ctx=ctx)


def _fits(value: Any, annotation: Any, descriptor: TypeDescriptor) -> bool:
    """`value` is already what Typer would make of it for `annotation` (no bounds, no parser)."""
    info = descriptor.parameter_info
    if info.parser is not None or info.min is not None or info.max is not None:
        return False
    if descriptor.is_choice or descriptor.is_path or descriptor.is_file:
        return False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(options) == 1 and _fits(value, options[0], descriptor)
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return (
            item in _PLAIN_TYPES
            and isinstance(value, (list, tuple))
            and all(type(v) is item for v in value)
        )
    return annotation in _PLAIN_TYPES and type(value) is annotation


def _as_given(param: TyperArgument | TyperOption) -> RuntimeParam:
    descriptor = param.type_descriptor
    return _AsGiven(descriptor.parameter_info, descriptor.annotation, descriptor)


class _PlainArgument(TyperArgument):
    def get_runtime_param(self) -> RuntimeParam:
        return _as_given(self)

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None  # the metavar (JOB, RECIPE.py) already says what goes there


class _PlainOption(TyperOption):
    def get_runtime_param(self) -> RuntimeParam:
        return _as_given(self)

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
