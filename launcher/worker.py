"""The worker entry point: what every process of every backend runs.

    python -m launcher.worker RUN_DIR/launch.json

It reads the `LaunchSpec`, loads the recipe, seeds, builds the Module / DataModule / Trainer,
and calls `fit`, resuming from the run directory's latest checkpoint when there is one.
Exit codes (launcher/errors.py): 0 done, 2 user error (`UserError`), 3 checkpointed on
SIGTERM/SIGUSR2 (`fit` raised `RequeueRequested`: "requeue me"), 130/143 stopped by the user
(SIGINT / SIGHUP, checkpointed: `RunStopped`; the run is KILLED). Backends call `main` and act
on the code it returns.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from launcher.errors import (
    FAILURE_EXIT_CODE,
    INTERRUPTED_EXIT_CODE,
    REQUEUE_EXIT_CODE,
    USER_ERROR_EXIT_CODE,
    OutOfSpace,
    RequeueRequested,
    RunStopped,
    UserError,
)
from launcher.spec import LaunchSpec

if TYPE_CHECKING:
    from launcher.loggers.system_metrics import NodeMetricsWriter
    from launcher.train.cpu_threads import ThreadChoice
    from launcher.train.trainer import Trainer

# Asked at a preemption: why no requeue is left (the SLURM task's budget), or None.
NoRequeue = Callable[[], str | None] | None
# LaunchSpec fields that become Trainer arguments when set.
_SPEC_TO_TRAINER = ("max_epochs", "max_steps", "precision", "strategy", "compile", "seed",
                    "tracking_uri")  # fmt: skip
_LAUNCH_PARAMS = ("backend", "nodes", "devices_per_node", "accelerator", "precision",
                  "strategy", "compile", "seed",
                  "cluster_file", "recipe", "resume", "max_restarts", "log_checkpoints")  # fmt: skip
_LAUNCH_SETTINGS = (*_LAUNCH_PARAMS, "command", "sweep")  # the trainer's `launch_settings`


def trainer_arguments(
    spec: LaunchSpec, defaults: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """Trainer kwargs: recipe `TRAINER` < `--set trainer.*` < explicit launch flags."""
    kwargs = {**defaults, **overrides}
    for name in _SPEC_TO_TRAINER:
        value = getattr(spec, name)
        if value is not None:
            kwargs[name] = value
    if spec.fast_dev_run:
        kwargs["fast_dev_run"] = spec.fast_dev_run
    kwargs.setdefault("seed", 0)  # a launched run is reproducible unless --seed says otherwise
    kwargs.update(
        accelerator=spec.accelerator,
        devices=spec.devices_per_node,
        num_nodes=spec.nodes,
        run_dir=spec.run_dir,
        experiment_name=spec.experiment,
        run_name=spec.name,
        default_root_dir=kwargs.get("default_root_dir") or _output_dir(spec),
        launch_settings={name: getattr(spec, name) for name in _LAUNCH_SETTINGS},
    )
    return kwargs


def resume_path(spec: LaunchSpec) -> str | None:
    """`--resume auto` -> "last" (the run dir's newest valid checkpoint), None if it has none.

    None on a fresh run: `fit(ckpt_path="last")` with nothing to find warns, as Lightning's does.
    """
    from launcher.train.checkpoint_store import CheckpointManager

    if spec.resume == "never":
        return None
    if spec.resume != "auto":
        return spec.resume
    resume_dir = os.path.join(spec.run_dir, "checkpoints", "resume")
    return "last" if CheckpointManager(resume_dir).has_checkpoint() else None


def run(spec: LaunchSpec, sigterm_stops: bool = False, no_requeue: NoRequeue = None) -> int:
    """Train `spec` in this process; returns the exit code.

    `sigterm_stops`: SIGTERM stops the run (KILLED) instead of asking for a requeue, as for a
    local run in the launching process, where only a person or the OS sends it. Global rank 0
    holds the run directory's lock meanwhile: the same `--name` started again while it runs is
    refused (`launcher.common.run_lock`). `no_requeue`, asked at a preemption: why the job may
    not be requeued again (its requeue budget is spent), or None; a reason ends the run FAILED.
    """
    from launcher.cluster_env import ClusterEnvironment
    from launcher.common.heartbeat import beating
    from launcher.common.run_lock import claim_run

    lock = (
        claim_run(spec.run_dir, spec.name) if ClusterEnvironment.detect().global_rank == 0 else None
    )
    try:
        if lock is None:
            return _train(spec, sigterm_stops, no_requeue)
        with beating(spec.run_dir):  # `launch runs` tells a run that died without a word
            return _train(spec, sigterm_stops, no_requeue)
    finally:
        if lock is not None:
            os.close(lock)


def _train(spec: LaunchSpec, sigterm_stops: bool, no_requeue: NoRequeue) -> int:
    from launcher.cli.recipe import load_recipe, resolve_overrides
    from launcher.train.seed import seed_everything
    from launcher.train.summary import run_summary
    from launcher.train.trainer import Trainer

    started = time.monotonic()
    _prestart_mlflow_sender(spec)
    threads = set_threads(spec)  # before the recipe's module-level code runs torch ops
    recipe = load_recipe(spec.recipe, spec.module)
    overrides = resolve_overrides(recipe, spec.overrides)
    kwargs = trainer_arguments(spec, recipe.trainer_defaults, overrides.trainer)
    kwargs["launch_settings"].update(threads=threads.threads, threads_from=threads.source)
    seed_everything(kwargs["seed"])  # before the model exists: identical init on every rank
    model = recipe.module_cls(**overrides.model)
    datamodule = recipe.datamodule_cls(**overrides.data) if recipe.datamodule_cls else None
    trainer = Trainer(**kwargs)
    trainer.signals.sigterm_stops = sigterm_stops
    trainer.signals.no_requeue = no_requeue
    node_metrics = _node_metrics(spec, trainer)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_path(spec))
    except RequeueRequested:
        spent = no_requeue() if no_requeue else None
        if spent and trainer.is_global_zero:
            _say(f"not requeueing: {spent}; the run is FAILED. "
                 f"Resume with: launch resume {spec.name}")  # fmt: skip
        return REQUEUE_EXIT_CODE  # checkpointed; the trainer already said so
    except RunStopped as stop:
        if trainer.is_global_zero:
            where = (
                f"checkpointed step {trainer.global_step}" if stop.checkpoint else "no checkpoint"
            )
            _say(f"stopped by {stop.signal_name} ({where}); the run is KILLED. "
                 f"Resume with: launch resume {spec.name}")  # fmt: skip
        return stop.exit_code
    finally:
        if node_metrics is not None:
            node_metrics.close()
    if trainer.is_global_zero:
        lines = run_summary(trainer, "FINISHED", time.monotonic() - started, spec.name)
        print("\n".join(lines), flush=True)
    # Leave the group together: a rank that exits while a peer still talks to it can abort.
    trainer.barrier()
    trainer.dist.teardown()
    return 0


def _prestart_mlflow_sender(spec: LaunchSpec) -> None:
    """Rank 0's MLflow helper process starts first thing (see `prestart`): in a worker
    process before torch is imported; in a one-process local run, inside `launch`, which has
    imported the recipe (and torch) to check the flags, it still overlaps the model's set-up."""
    from launcher.cluster_env import ClusterEnvironment

    if spec.fast_dev_run or ClusterEnvironment.detect().global_rank != 0:
        return  # no logger (fast_dev_run), or not the rank that logs
    from launcher.loggers.remote_sender import prestart
    from launcher.tracking.reader import resolve_tracking_uri

    try:
        prestart(resolve_tracking_uri(spec.tracking_uri, _output_dir(spec)))
    except UserError:
        pass  # a bad URI: the logger says so where it is made


def set_threads(spec: LaunchSpec) -> ThreadChoice:
    """This process's torch threads from `--threads`, OMP_NUM_THREADS or the allocation."""
    import torch

    from launcher.cluster_env import ClusterEnvironment
    from launcher.train.cpu_threads import apply_threads, choose_threads

    gpu = spec.accelerator == "gpu" or (spec.accelerator == "auto" and torch.cuda.is_available())
    choice = choose_threads(spec.threads, ClusterEnvironment.detect(), gpu)
    apply_threads(choice)
    return choice


def _node_metrics(spec: LaunchSpec, trainer: Trainer) -> NodeMetricsWriter | None:
    """On nodes other than rank 0's, their first process samples the node for MLflow (rank 0's
    logger reads the samples from the run dir: launcher/loggers/system_metrics.py)."""
    env = trainer.env
    if env.local_rank != 0 or env.node_rank == 0:
        return None
    from launcher.loggers.system_metrics import NodeMetricsWriter

    try:
        return NodeMetricsWriter(spec.run_dir, env.node_rank)
    except ImportError:  # psutil missing: rank 0 says so once
        return None


def main(
    spec_path: str,
    debug: bool | None = None,
    sigterm_stops: bool = False,
    no_requeue: NoRequeue = None,
) -> int:
    """Run the worker for the spec at `spec_path`; user errors print one paragraph."""
    spec = LaunchSpec.read(spec_path)
    debug = spec.debug if debug is None else debug
    kept = sys.stdout, sys.stderr
    route_output(spec)
    try:
        return run(spec, sigterm_stops, no_requeue)
    except KeyboardInterrupt:  # Ctrl-C twice, or outside the training loop
        if debug:
            traceback.print_exc()
        _say(f"interrupted; resume with: launch resume {spec.name}")
        return INTERRUPTED_EXIT_CODE
    except UserError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT_CODE
    except OutOfSpace as exc:  # the machine, not the user's input: one paragraph, exit 1
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return FAILURE_EXIT_CODE
    finally:
        # In-process (one local worker in the `launch` process): the caller's streams again.
        if isinstance(sys.stdout, _PrefixTee):
            sys.stdout.close_file()
            sys.stdout, sys.stderr = kept


def _say(line: str) -> None:
    """One line to stdout (under torchrun stderr is the agent's, silenced once the user stops
    the run); a closed terminal (SIGHUP) must not turn it into a traceback."""
    try:
        print(f"[launcher] {line}", flush=True)
    except OSError:
        pass


def route_output(spec: LaunchSpec) -> None:
    """Every rank keeps a log file (what `launch logs` reads); rank 0 also prints (prefixed
    when there are several), the others only write their file.

    Files are `RUN_DIR/logs/rank<N>.log`, appended to across restarts and requeues.
    """
    from pathlib import Path

    from launcher.cluster_env import ClusterEnvironment

    env = ClusterEnvironment.detect()
    log_dir = Path(spec.run_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(log_dir / f"rank{env.global_rank}.log", "a", buffering=1)  # noqa: SIM115
    if env.global_rank == 0:
        # Under Ray the prefix also tells the run's lines from Ray's (backends/ray_logs.py).
        prefix = "[rank 0] " if env.world_size > 1 or env.kind == "ray" else ""
        sys.stdout = _PrefixTee(sys.stdout, log_file, prefix)
        sys.stderr = _PrefixTee(sys.stderr, log_file, prefix)
        return
    # Other ranks stay quiet: their Python and C-level output goes to the file only.
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)
    sys.stdout = sys.stderr = log_file
    # A rank that prints nothing still says it is there (`launch logs --rank N` mid-run).
    again = f", restart {env.restart_count}" if env.restart_count else ""
    log_file.write(
        f"[launcher] rank {env.global_rank} of {env.world_size} (node {env.node_rank}, local "
        f"rank {env.local_rank}) on {socket.gethostname()}, pid {os.getpid()}{again}, started "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}; rank 0 prints the progress and metrics, this "
        "file holds this rank's own output\n"
    )


_TERMINAL_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


class _PrefixTee:
    """Writes each line to the console with a rank prefix, and to a log file."""

    def __init__(self, console: Any, log_file: Any, prefix: str) -> None:
        self.console, self.log_file, self.prefix = console, log_file, prefix
        self._at_line_start = True
        self._file_full = False

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            out.append(self.prefix + piece if self._at_line_start else piece)
            self._at_line_start = piece.endswith(("\n", "\r"))
        joined = "".join(out)
        self.console.write(joined)
        # The file gets text, not the live bar's terminal controls (cursor moves, colours).
        self._to_file(self.log_file.write, _TERMINAL_CONTROL.sub("", joined).replace("\r", "\n"))
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self._to_file(self.log_file.flush)

    def close_file(self) -> None:
        self._to_file(self.log_file.close)
        if self._file_full:  # its buffer could not be written: drop it
            with contextlib.suppress(OSError):
                self.log_file.close()

    def _to_file(self, write: Any, *args: Any) -> None:
        """A full disk stops the log file, not the run (the console still gets every line:
        the run's own out-of-space error must reach the user)."""
        if self._file_full:
            return
        try:
            write(*args)
        except OSError as exc:
            from launcher.common.files import is_out_of_space

            if not is_out_of_space(exc):
                raise
            self._file_full = True

    def isatty(self) -> bool:
        return self.console.isatty()

    def fileno(self) -> int:
        return self.console.fileno()


def _output_dir(spec: LaunchSpec) -> str:
    from pathlib import Path

    # RUN_DIR is OUTPUT/EXPERIMENT/NAME (a sweep trial's: OUTPUT/EXPERIMENT/SWEEP/NAME): the
    # MLflow store lives in OUTPUT.
    levels = 3 if spec.sweep else 2
    return str(Path(spec.run_dir).parents[levels - 1])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m launcher.worker RUN_DIR/launch.json", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    sys.exit(main(sys.argv[1]))
