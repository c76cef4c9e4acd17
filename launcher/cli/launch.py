"""`launch run` (also plain `launch RECIPE.py`) and `launch resume`.

    launch recipes/digits.py --max-epochs 2 --set lr=0.01
    launch recipes/digits.py --nodes 2 --gpus 8 --backend slurm --cluster my_cluster --wait
    launch recipes/digits.py --accelerator cpu --devices 2 --dry-run
    launch resume digits-20250101-120000

The commands only parse flags; `build_spec` (spec_builder.py) turns them into a `LaunchSpec`
and `submit_spec` has its backend plan it, then prints the plan (`--dry-run`) or submits it
and records the job.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer

from backends.base import Backend, Job, JobState, Plan
from backends.registry import JobRegistry
from launcher.cli.identity import find_job
from launcher.cli.options import (
    DebugOption,
    DryRunOption,
    JobArgument,
    LauncherCommand,
    WaitOption,
)
from launcher.common.heartbeat import heartbeat_path
from launcher.common.run_lock import check_not_running
from launcher.errors import UserError
from launcher.spec import DEFAULT_OUTPUT_DIR, SPEC_FILENAME, LaunchSpec
from launcher.train.names import PRECISIONS

__all__ = ["register", "resume_spec", "submit_spec"]


def submit_spec(
    spec: LaunchSpec,
    dry_run: bool = False,
    wait: bool = False,
    registry: JobRegistry | None = None,
) -> int:
    """Plan `spec` on its backend, submit the plan (which writes `launch.json`), record the job.

    Returns the exit code. `dry_run` prints the plan (`plan.render()`) and writes nothing.
    The local backend runs in the foreground and its workers' exit code is returned. Other
    backends return at once (0), or with `wait` follow the logs: 0 on SUCCEEDED, else 1.
    """
    from backends import get_backend

    backend = get_backend(spec.backend)
    plan = backend.plan(spec)
    if dry_run:
        text = plan.render()
        typer.echo(text, nl=not text.endswith("\n"))
        return 0
    check_not_running(spec.run_dir, spec.name)  # before submit writes its launch.json
    heartbeat_path(spec.run_dir).unlink(missing_ok=True)  # a dead attempt's: not this one's
    registry = registry or JobRegistry()
    started = None
    if spec.backend == "local":  # in the foreground: known to `launch resume` while it runs
        started = backend.new_job(spec, Path(spec.run_dir).name, state=JobState.RUNNING.value,
                                  pid=os.getpid())  # fmt: skip
        registry.record(started, spec)
    try:
        result = backend.submit(plan)
    except BaseException as exc:  # Ctrl-C, a crash: the record says so; resume finds it
        if started is not None:
            ended = JobState.CANCELLED if isinstance(exc, KeyboardInterrupt) else JobState.FAILED
            extra = {**started.extra, "state": ended.value}
            registry.update(dataclasses.replace(started, extra=extra))
        raise
    registry.record(result, spec)
    if "exit_code" in result.extra:  # a foreground backend: the run is over
        return int(result.extra["exit_code"])
    typer.echo(f"submitted {result.handle} ({spec.name}); run dir {spec.run_dir}")
    if not wait:
        typer.echo(f"  follow: launch logs {result.handle} --follow")
        return 0
    state = follow(backend, result, registry)
    typer.echo(f"{result.handle}: {state.value}", err=True)
    return 0 if state == JobState.SUCCEEDED else 1


def follow(backend: Backend[Plan], job: Job, registry: JobRegistry) -> JobState:
    """Print the job's logs until it ends; return (and record) its final state."""
    for line in backend.logs(job, follow=True):
        typer.echo(line, nl=False)
    state = backend.wait(job)
    registry.update(dataclasses.replace(job, extra={**job.extra, "state": state.value}))
    return state


def resume_spec(ref: str, registry: JobRegistry) -> LaunchSpec:
    """The spec of a recorded job (or run directory), set to resume from its checkpoints."""
    if (Path(ref) / SPEC_FILENAME).is_file():
        spec_path, backend = Path(ref) / SPEC_FILENAME, None
    else:
        job = find_job(ref, registry).job
        spec_path, backend = Path(job.run_dir) / SPEC_FILENAME, job.backend
    if not spec_path.is_file():
        raise UserError(f"cannot resume {ref}: {spec_path} is gone; start it again with launch")
    try:
        spec = LaunchSpec.read(str(spec_path))
    except (ValueError, TypeError) as exc:
        raise UserError(f"cannot resume {ref}: {spec_path} is not a launch spec ({exc})") from exc
    return dataclasses.replace(spec, resume="auto", backend=backend or spec.backend)


# -- Typer commands --------------------------------------------------------------------------


def run(
    recipe: Annotated[
        str, typer.Argument(metavar="RECIPE.py", help="The recipe file, e.g. recipes/digits.py.")
    ],
    backend: Annotated[
        str | None,
        typer.Option(
            metavar="NAME", help="local | slurm | ray (default: the cluster's, else local)."
        ),
    ] = None,
    nodes: Annotated[int, typer.Option(metavar="N", help="Number of nodes.")] = 1,
    gpus: Annotated[
        int | None, typer.Option(metavar="N", help="GPUs per node (one process each).")
    ] = None,
    devices: Annotated[
        int | None,
        typer.Option(
            metavar="N", help="Processes per node (CPU processes with --accelerator cpu)."
        ),
    ] = None,
    accelerator: Annotated[str, typer.Option(metavar="KIND", help="auto | cpu | gpu.")] = "auto",
    precision: Annotated[
        str | None, typer.Option(metavar="P", help=f"One of {', '.join(PRECISIONS)}.")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(metavar="S", help="ddp (default) | fsdp (FSDP2: shards each block)."),
    ] = None,
    compile: Annotated[
        str | None,
        typer.Option(
            metavar="WHAT",
            help="torch.compile: model (its forward) | blocks (each repeated block) | off.",
        ),
    ] = None,
    max_epochs: Annotated[
        int | None, typer.Option(metavar="N", help="Stop after N epochs.")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(metavar="N", help="Stop after N steps.")] = None,
    fast_dev_run: Annotated[
        bool,
        typer.Option(
            "--fast-dev-run", help="One batch of train/val to smoke-test (N batches: --set)."
        ),
    ] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Set a Module, DataModule (data.KEY) or Trainer (trainer.KEY) argument; repeat.",
        ),
    ] = None,
    module: Annotated[
        str | None,
        typer.Option(metavar="CLASS", help="The Module class, when the recipe has several."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Run name (default: RECIPE-YYYYmmdd-HHMMSS).")
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="MLflow experiment (default: the recipe's name)."),
    ] = None,
    output_dir: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help=f"Runs go to DIR/EXPERIMENT/NAME (default: the cluster's, else {DEFAULT_OUTPUT_DIR}).",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            metavar="CONFIG", help="Cluster config: a name in cluster_configs/ or a path."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(metavar="N", help="Global random seed.")] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Torch CPU threads per process (default: OMP_NUM_THREADS, else the "
            "allocation: SLURM cpus_per_task, Ray num_cpus_per_worker).",
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(metavar="FROM", help="auto (default) | a checkpoint | a run directory."),
    ] = None,
    no_resume: Annotated[
        bool, typer.Option("--no-resume", help="Start fresh, ignoring checkpoints.")
    ] = False,
    max_restarts: Annotated[
        int, typer.Option(metavar="N", help="Restart failed workers N times.")
    ] = 0,
    log_checkpoints: Annotated[
        bool, typer.Option("--log-checkpoints", help="Upload checkpoints to MLflow.")
    ] = False,
    address: Annotated[
        str | None, typer.Option(metavar="URL", help="Ray cluster address (--backend ray).")
    ] = None,
    wait: WaitOption = False,
    dry_run: DryRunOption = False,
    debug: DebugOption = False,
) -> None:
    """Run a recipe: locally in the foreground, or submitted to SLURM or Ray.

    \b
    Examples:
        launch run recipes/digits.py --max-epochs 2 --set lr=0.01 --set data.batch_size=64
        launch recipes/digits.py --accelerator cpu --devices 2 --nodes 2
        launch recipes/digits.py --backend slurm --cluster local_slurm --gpus 8 --wait
        launch recipes/digits.py --backend ray --address http://head:8265 --dry-run
    """
    flags = {k: v for k, v in locals().items() if k not in ("wait", "dry_run")}
    # Here, not at the top: `launch jobs`/`status` import this module and never build a spec.
    from launcher.cli.spec_builder import LaunchOptions, build_spec

    spec = build_spec(LaunchOptions(**{**flags, "overrides": overrides or []}))
    raise typer.Exit(submit_spec(spec, dry_run=dry_run, wait=wait))


def resume(
    job: JobArgument,
    wait: WaitOption = False,
    dry_run: DryRunOption = False,
    debug: DebugOption = False,
) -> None:
    """Resubmit a job (or run directory) with the same settings, resuming from its checkpoint.

    A sweep: only its unfinished trials run again, each from its own checkpoint."""
    from launcher.cli.sweep import find_sweep, resume_sweep

    registry = JobRegistry()
    if (found := find_sweep(job, registry)) is not None:
        if dry_run:
            raise UserError(f"--dry-run of a sweep: use `launch status {found.name}`")
        raise typer.Exit(resume_sweep(found))
    spec = resume_spec(job, registry)
    raise typer.Exit(submit_spec(spec, dry_run=dry_run, wait=wait, registry=registry))


def register(app: typer.Typer) -> None:
    """Add `run` and `resume` to `app`."""
    app.command("run", cls=LauncherCommand)(run)
    app.command("resume", cls=LauncherCommand)(resume)
