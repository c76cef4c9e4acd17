"""`LaunchSpec`: everything a backend needs to start a run, and all a worker needs to run it.

The CLI resolves flags, the cluster YAML and `--set` overrides into one `LaunchSpec`, writes
it as `launch.json` in the run directory, and hands it to a backend. Every backend starts the
same worker entry point on every process:

    python -m launcher.worker RUN_DIR/launch.json

This module imports nothing heavy (no torch), so the CLI stays fast.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from launcher.common.files import atomic_write_text

SPEC_FILENAME = "launch.json"
DEFAULT_OUTPUT_DIR = "./outputs"  # runs go to DIR/EXPERIMENT/NAME unless --output-dir


@dataclass
class LaunchSpec:
    """The resolved launch settings of one run (one MLflow run, one run directory)."""

    recipe: str  # absolute path of the recipe file
    run_dir: str  # absolute path; checkpoints, logs and launch.json live here
    name: str  # run name (MLflow run name)
    experiment: str  # MLflow experiment; the recipe's name unless --experiment
    backend: str = "local"
    nodes: int = 1
    devices_per_node: int = 1  # processes per node: GPUs per node, or CPU processes
    accelerator: str = "auto"  # "auto" | "cpu" | "gpu"
    precision: str | None = None  # None: the recipe's or the trainer's default
    strategy: str | None = None  # "ddp" | "fsdp"; None: the recipe's or the trainer's default
    compile: str | None = None  # "model" | "blocks" | "off"; None: the recipe's or off
    max_epochs: int | None = None
    max_steps: int | None = None
    fast_dev_run: int | bool = False
    seed: int | None = None
    threads: int | None = None  # torch threads per process; None: from the allocation
    module: str | None = None  # class name of the Module when the recipe defines several
    overrides: dict[str, str] = field(default_factory=dict)  # raw `--set key=value`
    resume: str = "auto"  # "auto" | "never" | a checkpoint path or run directory
    max_restarts: int = 0
    tracking_uri: str | None = None
    log_checkpoints: bool = False
    cluster: dict[str, Any] = field(default_factory=dict)  # resolved cluster config
    cluster_file: str | None = None
    debug: bool = False
    command: str = ""  # the launch command as typed: the MLflow run's note
    # A sweep trial's place in its sweep (launcher.sweep.trial_info): name, trial, params,
    # parent_run_id. Empty for a plain run.
    sweep: dict[str, Any] = field(default_factory=dict)

    @property
    def world_size(self) -> int:
        return self.nodes * self.devices_per_node

    @property
    def spec_path(self) -> str:
        return os.path.join(self.run_dir, SPEC_FILENAME)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | None = None) -> str:
        """Write the spec as JSON (atomically) and return the path."""
        path = path or self.spec_path
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaunchSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown launch spec keys {unknown}; valid: {sorted(known)}")
        return cls(**data)

    @classmethod
    def read(cls, path: str) -> LaunchSpec:
        with open(path) as f:
            return cls.from_dict(json.load(f))
