"""`build_spec`: the `launch run` flags, a cluster config and the recipe, resolved into a spec.

    spec = build_spec(LaunchOptions("recipes/digits.py", nodes=2, gpus=8, backend="slurm"))
    spec.world_size                            # -> 16

Every check of what the user typed happens here, before anything is submitted, and fails
with a `UserError` that names the fix.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from backends.ray_config import RayConfig
from backends.slurm import SlurmConfig
from launcher.cli.cluster_config import (
    ClusterConfig,
    config_to_dict,
    find_cluster_config,
    load_cluster_config,
)
from launcher.common.secrets import is_secret_key, mask_text
from launcher.errors import UserError
from launcher.spec import DEFAULT_OUTPUT_DIR, SPEC_FILENAME, LaunchSpec
from launcher.train.names import ACCELERATORS, COMPILE_MODES, PRECISIONS, STRATEGIES

# Trainer arguments the worker fills from the spec, and the flag that sets each.
FLAG_OWNED_TRAINER_ARGS = {
    "accelerator": "--accelerator",
    "devices": "--devices or --gpus",
    "num_nodes": "--nodes",
    "run_dir": "--output-dir/--experiment/--name",
    "default_root_dir": "--output-dir",
    "experiment_name": "--experiment",
    "run_name": "--name",
    "launch_settings": "the launch flags",
}


@dataclass
class LaunchOptions:
    """The `launch run` flags, as given (None: not given)."""

    recipe: str
    backend: str | None = None
    nodes: int = 1
    gpus: int | None = None
    devices: int | None = None
    accelerator: str = "auto"
    precision: str | None = None
    strategy: str | None = None
    compile: str | None = None
    max_epochs: int | None = None
    max_steps: int | None = None
    fast_dev_run: bool = False
    overrides: list[str] = field(default_factory=list)  # ["lr=0.01", ...]
    module: str | None = None
    name: str | None = None
    experiment: str | None = None
    output_dir: str | None = None
    cluster: str | None = None
    seed: int | None = None
    threads: int | None = None
    resume: str | None = None
    no_resume: bool = False
    max_restarts: int = 0
    log_checkpoints: bool = False
    address: str | None = None
    debug: bool = False


def build_spec(options: LaunchOptions, trainer_cls: type | None = None) -> LaunchSpec:
    """Validate the flags and resolve them, the cluster config and the recipe into a spec.

    Example: `build_spec(LaunchOptions("mnist.py", max_epochs=1)).run_dir`. `trainer_cls`
    replaces `launcher.train.trainer.Trainer` when checking `--set trainer.*` keys (for tests).
    """
    from backends import BACKENDS
    from launcher.cli.recipe import load_recipe, recipe_file, resolve_overrides
    from launcher.cli.recipe_static import check_recipe

    cluster_file = find_cluster_config(options.cluster).resolve() if options.cluster else None
    cluster = load_cluster_config(str(cluster_file)) if cluster_file else ClusterConfig()
    backend = options.backend or cluster.backend
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    _check_counts(options)
    accelerator, devices = _devices(options, backend, cluster)
    if options.precision is not None and options.precision not in PRECISIONS:
        raise UserError(f"--precision {options.precision}: choose one of {', '.join(PRECISIONS)}")
    for flag, value, choices in (("--strategy", options.strategy, STRATEGIES),
                                 ("--compile", options.compile, COMPILE_MODES)):  # fmt: skip
        if value is not None and value not in choices:
            raise UserError(f"{flag} {value}: choose one of {', '.join(choices)}")
    if options.address and backend != "ray":
        raise UserError(f"--address is the Ray cluster address; add --backend ray (not {backend})")
    if backend == "slurm":
        cluster.slurm = cluster.slurm or SlurmConfig()
        if accelerator == "gpu":
            cluster.slurm.gpus_per_node = devices
    if backend == "ray":
        cluster.ray = cluster.ray or RayConfig()
        cluster.ray.address = options.address or cluster.ray.address

    overrides = _parse_sets(options.overrides)
    typed = None
    if backend != "local" and trainer_cls is None:  # this process never trains: read the recipe
        typed = check_recipe(options.recipe, options.module, overrides)
    if typed is None:  # local, or only an import can tell
        recipe = load_recipe(options.recipe, options.module)
        typed = resolve_overrides(recipe, overrides, trainer_cls=trainer_cls)  # keys, types
    recipe_path = recipe_file(options.recipe)
    # The worker sets these from the spec; a `--set` for them would be silently dropped.
    clashes = sorted(typed.trainer.keys() & FLAG_OWNED_TRAINER_ARGS.keys())
    if clashes:
        key = clashes[0]
        raise UserError(
            f"--set {key}: the launcher sets Trainer({key}=...) itself; "
            f"use {FLAG_OWNED_TRAINER_ARGS[key]} instead"
        )

    experiment = options.experiment or recipe_path.stem
    output_dir = options.output_dir or cluster.output_dir or DEFAULT_OUTPUT_DIR
    experiment_dir = Path(os.path.expandvars(output_dir)).expanduser().resolve() / experiment
    name = options.name
    if name is None and options.resume == "auto" and not options.no_resume:  # else a new name
        name = newest_unfinished_run(experiment_dir, str(recipe_path))
    name = name or default_run_name(recipe_path.stem, overrides, options)
    for flag, value in (("--name", name), ("--experiment", experiment)):
        if not value.strip() or "/" in value or value in (".", ".."):
            raise UserError(f"{flag} {value!r}: use a plain name without '/'")
    run_dir = experiment_dir / name
    _check_writable(run_dir, output_dir)

    return LaunchSpec(
        recipe=str(recipe_path),
        run_dir=str(run_dir),
        name=name,
        experiment=experiment,
        backend=backend,
        nodes=options.nodes,
        devices_per_node=devices,
        accelerator=accelerator,
        precision=options.precision,
        strategy=options.strategy,
        compile=options.compile,
        max_epochs=options.max_epochs,
        max_steps=options.max_steps,
        fast_dev_run=options.fast_dev_run,
        seed=options.seed,
        threads=options.threads,
        module=options.module,
        overrides=overrides,
        resume=_resume(options),
        max_restarts=options.max_restarts,
        tracking_uri=cluster.tracking_uri,
        log_checkpoints=options.log_checkpoints,
        cluster=config_to_dict(cluster),
        cluster_file=str(cluster_file) if cluster_file else None,
        debug=options.debug,
        command=shlex.join(["launch", *sys.argv[1:]]),
    )


def default_run_name(recipe: str, overrides: dict[str, str], options: LaunchOptions) -> str:
    """A name that tells runs apart in MLflow's legends: the recipe, what was set, then when.

    `default_run_name("digits", {"lr": "0.01", "data.batch_size": "64"}, opts)`
    -> "digits-lr=0.01-batch_size=64-1201-074412" (the last part of each key; at most 4).
    """
    # A secret never becomes part of a name (names reach MLflow, folders and logs).
    chosen = [(key.rsplit(".", 1)[-1], mask_text(value)) for key, value in overrides.items()
              if not is_secret_key(key)]  # fmt: skip
    for flag, value in (("seed", options.seed), ("precision", options.precision)):
        if value is not None:
            chosen.append((flag, str(value)))
    pieces = [f"{key}={re.sub(r'[^A-Za-z0-9._+-]', '_', value)[:24]}" for key, value in chosen[:4]]
    return "-".join([recipe, *pieces, time.strftime("%m%d-%H%M%S")])


def _check_counts(options: LaunchOptions) -> None:
    for flag, value, minimum in (
        ("--nodes", options.nodes, 1),
        ("--gpus", options.gpus, 1),
        ("--devices", options.devices, 1),
        ("--max-restarts", options.max_restarts, 0),
        ("--threads", options.threads, 1),
    ):
        if value is not None and value < minimum:
            raise UserError(f"{flag} {value}: must be at least {minimum}")
    if options.accelerator not in ACCELERATORS:
        raise UserError(
            f"--accelerator {options.accelerator}: choose one of {', '.join(ACCELERATORS)}"
        )


def _devices(options: LaunchOptions, backend: str, cluster: ClusterConfig) -> tuple[str, int]:
    """(accelerator, processes per node) from --gpus/--devices/--accelerator and the cluster."""
    accelerator, devices = options.accelerator, options.devices
    if options.gpus is not None:
        if accelerator == "cpu":
            raise UserError("--gpus with --accelerator cpu: drop one (CPU processes: --devices N)")
        if devices is not None and devices != options.gpus:
            raise UserError(f"--gpus {options.gpus} and --devices {devices} disagree; drop one")
        accelerator, devices = "gpu", options.gpus
    elif devices is None and backend == "slurm" and cluster.slurm and cluster.slurm.gpus_per_node:
        if accelerator != "cpu":
            accelerator, devices = "gpu", cluster.slurm.gpus_per_node
    devices = devices or 1
    if accelerator == "gpu" and backend == "local":
        import torch  # only when GPUs are asked for on this machine

        available = torch.cuda.device_count()
        if available < devices:
            raise UserError(
                f"asked for {devices} GPU(s) per node but this machine has {available}. "
                f"Drop --gpus, or run CPU processes with --accelerator cpu --devices {devices}"
            )
    return accelerator, devices


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {pair}: expected KEY=VALUE, e.g. --set lr=0.01")
        overrides[key.strip()] = value
    return overrides


def newest_unfinished_run(experiment_dir: Path, recipe_path: str) -> str | None:
    """`--resume auto` without `--name`: the newest run of this recipe that has not finished.

    A run counts when its `launch.json` names the same recipe file and its newest resume
    checkpoint is not a finished run's last one. Says which run it picked, or that none is.
    """
    from launcher.train.checkpoint_store import CheckpointManager

    found: list[tuple[float, str]] = []
    for spec_path in experiment_dir.glob(f"*/{SPEC_FILENAME}"):
        try:
            spec = LaunchSpec.read(str(spec_path))
        except (OSError, ValueError, TypeError):
            continue
        if Path(spec.recipe).resolve() != Path(recipe_path).resolve():
            continue
        manager = CheckpointManager(str(spec_path.parent / "checkpoints" / "resume"))
        entries = manager.entries()
        if entries and not manager.is_finished():
            found.append((entries[-1].get("time") or spec_path.stat().st_mtime, spec.name))
    if not found:
        print(f"--resume auto: no unfinished run of {recipe_path} in {experiment_dir}; "
              "starting a new one", file=sys.stderr)  # fmt: skip
        return None
    _, name = max(found)
    others = f" (newest of {len(found)}; pick another with --name)" if len(found) > 1 else ""
    print(f"--resume auto: resuming run {name!r}, the newest unfinished run of "
          f"{Path(recipe_path).name} in experiment {experiment_dir.name}{others}", file=sys.stderr)  # fmt: skip
    return name


def _resume(options: LaunchOptions) -> str:
    if options.no_resume:
        if options.resume is not None:
            raise UserError("--resume and --no-resume contradict each other; drop one")
        return "never"
    if options.resume in (None, "auto"):
        return "auto"
    path = Path(options.resume).expanduser()
    if not path.exists():
        raise UserError(
            f"--resume {options.resume}: no such checkpoint or run directory; "
            "pass an existing path, or --resume auto"
        )
    return str(path.resolve())


def _check_writable(run_dir: Path, output_dir: str) -> None:
    """Fail now if the run dir could not be created; create nothing (a dry run writes nothing)."""
    existing = next(p for p in [run_dir, *run_dir.parents] if p.exists())
    if not existing.is_dir():
        problem = f"Not a directory: {existing}"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"Permission denied: {existing}"
    else:
        return
    raise UserError(
        f"cannot write to the output directory {output_dir} ({problem}); "
        "pass --output-dir PATH to a writable folder"
    )
