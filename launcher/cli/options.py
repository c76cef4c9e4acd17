"""Option aliases shared by several `launch` commands, so they read the same everywhere.

def logs(job: JobArgument, debug: DebugOption = False) -> None: ...
"""

from __future__ import annotations

from typing import Annotated

import typer

DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the full traceback of errors, including user errors.")
]
JobArgument = Annotated[
    str,
    typer.Argument(
        help="A job: its handle (slurm://4242), its id (4242), its run name, or a unique prefix."
    ),
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Follow the logs until the job ends; exit 0 on success.")
]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print exactly what would be submitted (sbatch script, Ray job, worker commands).",
    ),
]
