"""Backends: how a run is submitted. Each scheduler is one module, imported lazily by name.

from backends import get_backend
backend = get_backend("local")
"""

from __future__ import annotations

import importlib

from backends.base import Backend, DryRun, Job, JobState, parse_handle

# name -> "module:Class"; modules import their heavy dependencies (submitit, ray) themselves.
BACKENDS = {
    "local": "backends.local:LocalBackend",
    "slurm": "backends.slurm:SlurmBackend",
    "ray": "backends.ray:RayBackend",
}

__all__ = ["BACKENDS", "Backend", "DryRun", "Job", "JobState", "get_backend", "parse_handle"]


def get_backend(name: str, **options: object) -> Backend:
    """Instantiate the backend called `name` ("local", "slurm", "ray")."""
    from launcher.errors import UserError

    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module_name, _, class_name = BACKENDS[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**options)
