"""`launch sweep`: many trials of one recipe as one job; and the sweep side of jobs/status/...

    launch sweep tests/recipes/tiny.py --max-steps 20 --grid lr=0.1,0.01 --grid hidden=16,32 \
        --metric val_acc --mode max --max-parallel 2
    launch sweep recipes/digits.py --random 8 --loguniform lr=1e-4:1e-2 --seed 0 --dry-run
    launch status SWEEP | logs SWEEP --trial 3 | cancel SWEEP | resume SWEEP | compare SWEEP

`sweep` takes every `launch run` flag (they apply to each trial) plus the search. Each trial
is a run of its own (`SWEEP_DIR/SWEEP-N`, its own launch.json, checkpoints and MLflow run,
nested under the sweep's parent run); `launch resume SWEEP` runs only the unfinished ones.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import shlex
import signal
import sys
import time
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from backends.registry import JobRegistry
from launcher.cli.options import LauncherCommand
from launcher.common.process import process_alive
from launcher.errors import UserError
from launcher.spec import LaunchSpec
from launcher.sweep.plan import SweepPlan, trial_command, trial_table
from launcher.sweep.record import SweepIndex, SweepRecord, TrialRecord
from launcher.sweep.search import (
    DEFAULT_MAX_TRIALS,
    SearchSpace,
    add_ranges,
    make_trials,
    parse_grid,
    space_from_yaml,
)

__all__ = ["find_sweep", "register"]

SEARCH_OPTIONS: dict[str, Any] = {
    "grid": Annotated[list[str] | None, typer.Option("--grid", metavar="KEY=V1,V2", help="Try each value of KEY (repeat: the product of all grids).")],  # noqa: E501
    "random": Annotated[int | None, typer.Option("--random", metavar="N", help="Draw N points from the --uniform/--loguniform/--choice ranges.")],  # noqa: E501
    "uniform": Annotated[list[str] | None, typer.Option("--uniform", metavar="KEY=LOW:HIGH", help="Draw KEY uniformly (with --random).")],  # noqa: E501
    "loguniform": Annotated[list[str] | None, typer.Option("--loguniform", metavar="KEY=LOW:HIGH", help="Draw KEY log-uniformly (with --random).")],  # noqa: E501
    "choice": Annotated[list[str] | None, typer.Option("--choice", metavar="KEY=V1,V2", help="Draw KEY from these values (with --random).")],  # noqa: E501
    "seeds": Annotated[int | None, typer.Option("--seeds", metavar="K", help="Repeat each point with K seeds (--seed, --seed+1, ...).")],  # noqa: E501
    "sweep_file": Annotated[str | None, typer.Option("--sweep", metavar="SWEEP.yaml", help="The search as a YAML file (flags given too win).")],  # noqa: E501
    "max_parallel": Annotated[int | None, typer.Option("--max-parallel", metavar="P", help="Run at most P trials at once (default 1).")],  # noqa: E501
    "max_trials": Annotated[int | None, typer.Option("--max-trials", metavar="N", help=f"Refuse a search of more than N trials (default {DEFAULT_MAX_TRIALS}).")],  # noqa: E501
    "metric": Annotated[str | None, typer.Option("--metric", metavar="NAME", help="The objective: a metric the recipe logs, e.g. val_acc.")],  # noqa: E501
    "mode": Annotated[str | None, typer.Option("--mode", metavar="min|max", help="Whether a lower or a higher objective is better (default: from its name).")],  # noqa: E501
}  # fmt: skip


@dataclasses.dataclass
class SearchOptions:
    """The search flags of `launch sweep`, as given (None: not given)."""

    grid: list[str] | None = None
    random: int | None = None
    uniform: list[str] | None = None
    loguniform: list[str] | None = None
    choice: list[str] | None = None
    seeds: int | None = None
    sweep_file: str | None = None
    max_parallel: int | None = None
    max_trials: int | None = None
    metric: str | None = None
    mode: str | None = None


def build_sweep(flags: dict[str, Any], search: SearchOptions, argv: list[str]) -> SweepPlan:
    """Check the search and every trial's settings (keys and types as `--set`'s), and plan it."""
    from backends import get_backend
    from launcher.cli.spec_builder import LaunchOptions, build_spec
    from launcher.tracking.reader import metric_mode, resolve_tracking_uri

    space, settings = _space(search, flags.get("seed"))
    max_trials = _pick(search.max_trials, settings, "max_trials", DEFAULT_MAX_TRIALS)
    trials = make_trials(space, max_trials)
    metric = _pick(search.metric, settings, "metric", None)
    mode = _pick(search.mode, settings, "mode", metric_mode(metric) if metric else "max")
    if mode not in ("min", "max"):
        raise UserError(f"--mode {mode}: choose min or max")
    max_parallel = _pick(search.max_parallel, settings, "max_parallel", 1)
    if max_parallel < 1:
        raise UserError(f"--max-parallel {max_parallel}: must be at least 1")

    if flags.get("resume") is not None or flags.get("no_resume"):
        raise UserError(
            "--resume/--no-resume: a sweep's trials always start fresh in their own run dirs "
            "and `launch resume SWEEP` continues each from its own checkpoint; drop the flag"
        )
    base = LaunchOptions(**{**flags, "overrides": list(flags.get("overrides") or [])})
    first = build_spec(dataclasses.replace(base, name=base.name or "sweep-probe"))
    if first.backend != "local":
        raise UserError(
            f"launch sweep --backend {first.backend}: sweeps run on the local backend for now "
            "(SLURM job arrays and Ray are not built yet); drop --backend, or launch the "
            "trials one by one with launch --set"
        )
    stem = Path(first.recipe).stem
    name = base.name or f"{stem}-sweep-{time.strftime('%m%d-%H%M%S')}"
    sweep_dir = Path(first.run_dir).parent / name
    output_dir = str(Path(first.run_dir).parent.parent)
    uri = resolve_tracking_uri(first.tracking_uri, output_dir)

    records, specs = [], []
    for trial in trials:
        trial_name = f"{name}-{trial.index}"
        options = dataclasses.replace(
            base,
            name=trial_name,
            overrides=[*base.overrides, *(f"{k}={v}" for k, v in trial.params.items())],
            seed=trial.seed if trial.seed is not None else base.seed,
        )
        try:
            spec = build_spec(options)
        except UserError as exc:
            raise UserError(f"in the search (trial {trial.index}): {exc}") from exc
        command = trial_command(argv, trial.params, trial.seed)
        record = TrialRecord(trial.index, trial_name, str(sweep_dir / trial_name),
                             trial.params, trial.seed, command)  # fmt: skip
        specs.append(dataclasses.replace(
            spec, run_dir=record.run_dir, tracking_uri=uri, command=command,
            sweep={"name": name, "trial": trial.index, "params": trial.params,
                   "parent_run_id": None},
        ))  # fmt: skip
        records.append(record)
    sweep = SweepRecord(
        name=name, sweep_dir=str(sweep_dir), recipe=first.recipe, experiment=first.experiment,
        backend=first.backend, definition=space.to_dict(), trials=records, metric=metric,
        mode=mode, max_parallel=max_parallel, tracking_uri=uri,
        command=shlex.join(["launch", *argv]),
    )  # fmt: skip
    backend = get_backend(first.backend)
    jobs = [
        _job_text(trial, backend.plan(spec).render())
        for trial, spec in zip(records, specs, strict=True)
    ]
    return SweepPlan(sweep, specs, jobs)


def _job_text(trial: TrialRecord, plan: str) -> str:
    """What a trial starts (`launch resume RUN_DIR`), then what that runs (its backend plan)."""
    from launcher.sweep.local import trial_process_command

    runs = plan.rstrip("\n").replace("\n", "\n        ")
    return f"starts: {shlex.join(trial_process_command(trial))}\nruns:   {runs}\n"


def _space(search: SearchOptions, seed: int | None) -> tuple[SearchSpace, dict[str, Any]]:
    space, settings = SearchSpace(), dict[str, Any]()
    if search.sweep_file:
        import yaml

        path = Path(search.sweep_file)
        if not path.is_file():
            raise UserError(f"--sweep {search.sweep_file}: no such file; pass a sweep YAML file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise UserError(f"--sweep {search.sweep_file}: not valid YAML ({exc})") from exc
        space, settings = space_from_yaml(data, search.sweep_file)
    for key, values in parse_grid(search.grid or []).items():
        if key in space.ranges:
            raise UserError(f"{key} is searched twice (a grid and a range); keep one")
        space.grid[key] = values
    for kind in ("uniform", "loguniform", "choice"):
        add_ranges(space, kind, getattr(search, kind) or [])
    space.random = search.random if search.random is not None else space.random
    space.seeds = search.seeds if search.seeds is not None else space.seeds
    space.seed = seed if seed is not None else space.seed
    return space, settings


def _pick(flag: Any, settings: dict[str, Any], key: str, default: Any) -> Any:
    return flag if flag is not None else settings.get(key, default)


# -- running and resuming --------------------------------------------------------------------


def run_sweep(plan: SweepPlan, registry: JobRegistry) -> int:
    """Record the sweep, open its MLflow parent, write every trial's spec, run the trials."""
    record = plan.record
    if record.path.is_file():
        raise UserError(
            f"sweep {record.name} exists ({record.sweep_dir}); continue it with "
            f"`launch resume {record.name}`, or pick another --name"
        )
    Path(record.sweep_dir).mkdir(parents=True, exist_ok=True)
    record.write()
    SweepIndex(registry.root).add(record)
    return _run(record, plan.specs)


def resume_sweep(record: SweepRecord) -> int:
    """Run the sweep's unfinished trials again, each from its own checkpoint."""
    from launcher.sweep.local import pending_trials

    if record.state == "RUNNING" and process_alive(record.pid):
        raise UserError(
            f"sweep {record.name} is running (process {record.pid}); it runs its own pending "
            f"trials. Stop it first with `launch cancel {record.name}`"
        )
    if not pending_trials(record):
        typer.echo(f"sweep {record.name}: every trial has finished; nothing to resume")
        return 0
    specs = [LaunchSpec.read(str(Path(t.run_dir) / "launch.json")) for t in record.trials]
    return _run(record, specs)


def _run(record: SweepRecord, specs: list[LaunchSpec]) -> int:
    from launcher.sweep.local import pending_trials, run_trials
    from launcher.sweep.tracking import (
        close_parent,
        definition_yaml,
        open_parent,
        sort_by_objective,
        trial_results,
        update_best,
    )

    try:
        record.parent_run_id = open_parent(record, definition_yaml(record.definition))
    except Exception as exc:  # noqa: BLE001 - the trials spool their runs until the store is back
        _warn(f"the sweep's MLflow parent run was not opened ({exc}); its trials run anyway")
    record.pid, record.state = os.getpid(), "RUNNING"
    record.write()
    for spec in specs:  # each trial's spec names its parent run
        dataclasses.replace(
            spec, sweep={**spec.sweep, "parent_run_id": record.parent_run_id}
        ).write()
    ended = 0

    def on_end(trial: TrialRecord, code: int) -> None:
        nonlocal ended
        ended += 1
        objective = None
        try:
            results = trial_results(record)
            update_best(record, results, step=ended)
            objective = results[trial.index].objective
        except Exception as exc:  # noqa: BLE001 - a store that is down must not stop the sweep
            _warn(f"trial {trial.index}: its objective was not read from MLflow ({exc})")
        said = f", {record.metric}={objective:.4g}" if objective is not None else ""
        typer.echo(f"trial {trial.index} ({trial.name}): exit {code}{said}", err=True)

    pending = pending_trials(record)
    typer.echo(f"sweep {record.name}: {len(pending)} of {len(record.trials)} trials to run; "
               f"sweep dir {record.sweep_dir}", err=True)  # fmt: skip
    code = run_trials(record, pending, on_end)
    stopped = code not in (0, 1)
    record.state = "CANCELLED" if stopped else "SUCCEEDED" if code == 0 else "FAILED"
    record.pid = None
    record.write()
    try:
        close_parent(record, "KILLED" if stopped else "FINISHED" if code == 0 else "FAILED")
        ranked = sort_by_objective(record, trial_results(record))
    except Exception as exc:  # noqa: BLE001 - the trials' own state is recorded already
        _warn(f"the sweep's MLflow parent run was not ended ({exc})")
        ranked = []
    logged = sorted({key for result in ranked for key in result.metrics})
    if record.metric and logged and all(r.objective is None for r in ranked):
        _warn(f"no trial logged --metric {record.metric}, so none is best; they logged: "
              f"{', '.join(logged)}")  # fmt: skip
    if ranked and ranked[0].objective is not None:
        best = record.trials[ranked[0].index]
        typer.echo(f"best trial {best.index}: {record.metric}={ranked[0].objective:.4g}; "
                   f"run it alone: {best.command}")  # fmt: skip
    typer.echo(f"sweep {record.name}: {record.state}; compare: launch compare {record.name}")
    return code


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


# -- the sweep as one job: jobs, status, logs, cancel ----------------------------------------


def find_sweep(ref: str, registry: JobRegistry) -> SweepRecord | None:
    """The sweep `ref` names (its name, a unique prefix, `sweep://NAME`, its dir), or None."""
    return SweepIndex(registry.root).find(ref.removeprefix("sweep://"))


def trial_states(record: SweepRecord, registry: JobRegistry) -> list[str]:
    """Each trial's state word: its job's (as `launch jobs` says it), PENDING before it ran."""
    from launcher.cli.jobs import current_state

    states = []
    for trial in record.trials:
        found = registry.matches(trial.name)
        job = next((r.job for r in found if r.job.name == trial.name), None)
        states.append("PENDING" if job is None else current_state(job, registry).value)
    return states


def sweep_state(record: SweepRecord) -> str:
    """The sweep's own state: RUNNING while its `launch sweep` process lives, else its end."""
    if record.state == "RUNNING" and not process_alive(record.pid):
        return "LOST"
    return record.state


def sweep_row(record: SweepRecord, registry: JobRegistry) -> dict[str, Any]:
    """`launch jobs`' line for a sweep: its state and its trials counted by state."""
    counts: dict[str, int] = {}
    for state in trial_states(record, registry):
        counts[state] = counts.get(state, 0) + 1
    return {
        "handle": f"sweep://{record.name}",
        "id": record.name,
        "name": record.name,
        "backend": record.backend,
        "state": sweep_state(record),
        "trials": counts,
        "error": None,
        "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.submitted_at)),
        "run_dir": record.sweep_dir,
        "recipe": record.recipe,
        "mlflow_run_id": record.parent_run_id,
    }


def print_sweep_status(record: SweepRecord, registry: JobRegistry, as_json: bool) -> None:
    """Every trial: its params, state, newest step and objective."""
    from launcher.cli.output import print_json
    from launcher.sweep.tracking import trial_results

    states = trial_states(record, registry)
    results = trial_results(record)
    if as_json:
        print_json([{"trial": t.index, "name": t.name, "params": t.params, "seed": t.seed,
                     "state": state, "step": r.step, "objective": r.objective,
                     "mlflow_run_id": r.run_id, "run_dir": t.run_dir}
                    for t, state, r in zip(record.trials, states, results, strict=True)])  # fmt: skip
        return
    objective = record.metric or "objective"
    typer.echo(f"sweep {record.name}: {sweep_state(record)}; {len(record.trials)} trials; "
               f"sweep dir {record.sweep_dir}")  # fmt: skip
    extra = {
        "state": states,
        "step": ["-" if r.step is None else str(r.step) for r in results],
        objective: ["-" if r.objective is None else f"{r.objective:.4g}" for r in results],
    }
    for line in trial_table(record.trials, extra):
        typer.echo(line)


def sweep_logs(record: SweepRecord, trial: int | None, registry: JobRegistry) -> TrialRecord:
    """The trial `--trial N` names (required for a sweep: its trials log apart)."""
    if trial is None:
        raise UserError(
            f"{record.name} is a sweep of {len(record.trials)} trials; pick one with --trial N "
            f"(0-{len(record.trials) - 1}); `launch status {record.name}` lists them"
        )
    return record.trial(trial)


def cancel_sweep(record: SweepRecord, registry: JobRegistry) -> None:
    """Stop the sweep: its `launch sweep` process passes the stop to every running trial
    (each checkpoints, ends KILLED) and starts no other."""
    if record.state != "RUNNING" or not process_alive(record.pid):
        typer.echo(f"sweep {record.name} is not running ({sweep_state(record)}); nothing to cancel")
        return
    assert record.pid is not None
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + 90.0
    while process_alive(record.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
        record = SweepRecord.read(record.sweep_dir)
        if record.pid is None:
            break
    typer.echo(f"cancelled sweep {record.name}: {SweepRecord.read(record.sweep_dir).state}")


# -- compare ----------------------------------------------------------------------------------


def compare_sweep(record: SweepRecord, as_json: bool, plot: str | None) -> None:
    """Trials sorted by the objective, swept params as columns; the best trial's command."""
    from launcher.cli.output import print_json
    from launcher.sweep.tracking import sort_by_objective, trial_results

    results = trial_results(record)
    ranked = sort_by_objective(record, results)
    trials = [record.trials[r.index] for r in ranked]
    best = ranked[0] if ranked and ranked[0].objective is not None else None
    if as_json:
        print_json([{"trial": t.index, "name": t.name, "params": t.params, "seed": t.seed,
                     "objective": r.objective, "metric": record.metric, "mode": record.mode,
                     "mlflow_run_id": r.run_id, "command": t.command}
                    for t, r in zip(trials, ranked, strict=True)])  # fmt: skip
    else:
        objective = record.metric or "objective"
        typer.echo(f"sweep {record.name}: trials by {objective} ({record.mode}), best first")
        extra = {objective: ["-" if r.objective is None else f"{r.objective:.4g}" for r in ranked]}
        for line in trial_table(trials, extra):
            typer.echo(line)
        if best is not None:
            typer.echo(
                f"best: trial {best.index}; run it alone (longer: raise --max-epochs or --max-steps):"
            )
            typer.echo(f"  {record.trials[best.index].command}")
    if plot:
        from launcher.sweep.plots import plot_sweep

        written = plot_sweep(record, results, plot)
        typer.echo(f"plots written to {', '.join(written)}", err=as_json)


# -- the command ------------------------------------------------------------------------------


def sweep(**flags: Any) -> None:
    """Run many trials of a recipe as one job: a grid or random search, each trial resumable.

    Takes every `launch run` flag (applied to each trial) plus the search.

    \b
    Examples:
        launch sweep recipes/digits.py --grid lr=0.1,0.01 --grid hidden=16,32 --metric val_acc
        launch sweep recipes/digits.py --random 8 --loguniform lr=1e-4:1e-2 --seed 0 --seeds 2
        launch sweep recipes/digits.py --sweep sweep.yaml --max-parallel 2 --dry-run
    """
    search = SearchOptions(**{name: flags.pop(name) for name in SEARCH_OPTIONS})
    dry_run = flags.pop("dry_run")
    flags.pop("wait")  # local trials run in the foreground: the sweep always waits
    flags["overrides"] = flags.get("overrides") or []
    argv = sys.argv[1:]
    plan = build_sweep(flags, search, argv)
    if dry_run:
        text = plan.render()
        typer.echo(text, nl=not text.endswith("\n"))
        raise typer.Exit(0)
    raise typer.Exit(run_sweep(plan, JobRegistry()))


def _sweep_signature() -> None:
    """`sweep` takes `launch run`'s options (one definition of each) plus the search ones."""
    from launcher.cli.launch import run

    hints = typing.get_type_hints(run, include_extras=True)
    params = [
        p.replace(annotation=hints[p.name]) for p in inspect.signature(run).parameters.values()
    ]
    tail = [p for p in params if p.name in ("wait", "dry_run", "debug")]
    head = [p for p in params if p not in tail]
    search = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=hint, default=None)
              for name, hint in SEARCH_OPTIONS.items()]  # fmt: skip
    ordered = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in [*head, *search, *tail]]
    sweep.__signature__ = inspect.Signature(ordered)  # type: ignore[attr-defined]
    sweep.__annotations__ = {p.name: p.annotation for p in ordered}


def register(app: typer.Typer) -> None:
    """Add `sweep` to `app`."""
    _sweep_signature()
    app.command("sweep", cls=LauncherCommand)(sweep)
