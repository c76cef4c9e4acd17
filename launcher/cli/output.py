"""How the listing commands print: one line per item that fits the terminal, or JSON.

    columns = [Column("handle", keep=True), Column("state"), Column("run dir", drop=1)]
    print_rows(columns, [{"handle": "slurm://42", "state": "RUNNING", "run dir": "/o/x"}])
    print_json([{"handle": "slurm://42", ...}])          # what `--json` prints

Text is plain aligned columns (no box drawing, no colour), so it reads the same in a
terminal, a log file and a pipe. On a terminal narrower than the line, `shrink` columns are
cut with an ellipsis (down to their `min_width`); if that is not enough, the columns with the
highest `drop` go, and a narrow one comes back where a wide one left room. A `keep` column (an
id, a handle) is never cut, even if the line then wraps. Piped output is never narrowed
unless `COLUMNS` asks for it. Used by `launch jobs|status|runs|compare`; imports nothing heavy.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import typer

GAP = "  "
ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """One column of a listing: its header, and what may give way when the line is too long.

    `drop`: 0 never dropped; otherwise dropped when too wide, highest first.
    `shrink`: may be cut to `min_width` characters (with an ellipsis) before anything is
    dropped. `keep`: never cut (ids, handles, names people copy).
    """

    header: str
    drop: int = 0
    shrink: bool = False
    keep: bool = False
    min_width: int = 12


def output_width() -> int | None:
    """Characters per line: the terminal's, else `$COLUMNS`, else None (no limit: a pipe)."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


def fit_rows(
    columns: Sequence[Column], rows: Sequence[Mapping[str, str | None]], width: int | None
) -> list[str]:
    """The header and one line per row, narrowed to `width` as `Column` describes.

    A missing or empty cell reads `-`, so every line has a word in every column.
    """
    texts = [{c.header: _text(r.get(c.header)) for c in columns} for r in rows]
    natural = {c.header: max([len(c.header), *(len(t[c.header]) for t in texts)]) for c in columns}
    levels = sorted({c.drop for c in columns if c.drop}, reverse=True)
    shown = list(columns)
    while True:  # shrink what may shrink; if that is not enough, drop a level and try again
        widths = _shrunk(shown, natural, width)
        if width is None or _total(shown, widths) <= width or not levels:
            break
        level = levels.pop(0)
        shown = [c for c in shown if c.drop != level]
    if width is not None:  # room left by a wide column that went: a narrow one may come back
        for column in sorted((c for c in columns if c not in shown), key=lambda c: c.drop):
            candidate = [c for c in columns if c in shown or c is column]
            trial = _shrunk(candidate, natural, width)
            if _total(candidate, trial) <= width:
                shown, widths = candidate, trial
    lines = [_line([c.header for c in shown], shown, widths)]
    for text in texts:
        cells = [_cut(text[c.header], widths[c.header]) for c in shown]
        lines.append(_line(cells, shown, widths))
    return lines


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _total(shown: Sequence[Column], widths: Mapping[str, int]) -> int:
    return sum(widths[c.header] for c in shown) + len(GAP) * (len(shown) - 1)


def _shrunk(
    shown: Sequence[Column], natural: Mapping[str, int], width: int | None
) -> dict[str, int]:
    """Column widths with the `shrink` columns (least important first) cut to fit `width`."""
    widths = dict(natural)
    if width is None:
        return widths
    for column in sorted((c for c in shown if c.shrink and not c.keep), key=lambda c: -c.drop):
        excess = _total(shown, widths) - width
        if excess <= 0:
            break
        narrowest = max(column.min_width, len(column.header))
        widths[column.header] = max(
            min(narrowest, widths[column.header]), widths[column.header] - excess
        )
    return widths


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + ELLIPSIS


def _line(cells: Sequence[str], shown: Sequence[Column], widths: Mapping[str, int]) -> str:
    padded = [cell.ljust(widths[c.header]) for cell, c in zip(cells, shown, strict=True)]
    return GAP.join(padded).rstrip()


def print_rows(columns: Sequence[Column], rows: Sequence[Mapping[str, str | None]]) -> None:
    """Print `rows` (dicts header -> text) as aligned lines that fit `output_width()`."""
    for line in fit_rows(columns, rows, output_width()):
        typer.echo(line)


def print_json(document: Any) -> None:
    """Print `document` as indented JSON (what every `--json` prints)."""
    typer.echo(json.dumps(document, indent=2, default=str))
