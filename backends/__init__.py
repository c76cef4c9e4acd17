"""Backends: how a run's processes start (local, SLURM, Ray) and how to ask about them later.

    from backends import get_backend
    backend = get_backend("slurm")
    plan = backend.plan(spec)            # nothing written, nobody contacted
    print(plan.render())                 # what `--dry-run` prints: exactly what submit sends
    job = backend.submit(plan)

    base.py          Backend (plan -> submit, status, logs, cancel), Plan, Job, JobState
    registry.py      the local record of submitted jobs (`launch jobs`)
    local.py         this host: in-process, or torchrun agents (one per "node")
    slurm.py         SlurmConfig, SlurmPlan (the sbatch script), SlurmBackend
    slurm_task.py    what runs inside a SLURM job: the worker, then a requeue on a signal
    scontrol.py      `scontrol show` parsing and SLURM's job states -> JobState
    ray.py           RayPlan (the Ray Job request), RayBackend
    ray_config.py    RayConfig and the Ray Train settings derived from it (no Ray import)
    ray_cluster.py   reaching a Ray cluster: job API address, capacity, a temporary head
    ray_driver.py    the Ray Job entrypoint on the cluster: TorchTrainer over the worker

Backends import `launcher.spec`, `launcher.errors` and `launcher.common`, and of the training
runtime only its entry point, `launcher.worker` (started as `python -m launcher.worker
RUN_DIR/launch.json`, or called in-process); never `launcher.cli`. Only the CLI
(`launcher/cli/`) imports backends. Each backend module imports its heavy dependency
(submitit, ray) inside the functions that need it, so importing one, or its config, is cheap.
"""

from __future__ import annotations

import importlib

from backends.base import Backend, Job, JobState, Plan, parse_handle

# name -> "module:Class"; modules import their heavy dependencies (submitit, ray) themselves.
BACKENDS = {
    "local": "backends.local:LocalBackend",
    "slurm": "backends.slurm:SlurmBackend",
    "ray": "backends.ray:RayBackend",
}

__all__ = ["BACKENDS", "Backend", "Job", "JobState", "Plan", "get_backend", "parse_handle"]


def get_backend(name: str, **options: object) -> Backend[Plan]:
    """Instantiate the backend called `name` ("local", "slurm", "ray")."""
    from launcher.errors import UserError

    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module_name, _, class_name = BACKENDS[name].partition(":")
    backend: Backend[Plan] = getattr(importlib.import_module(module_name), class_name)(**options)
    return backend
