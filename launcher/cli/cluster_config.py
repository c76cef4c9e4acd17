"""Cluster configs: a YAML file per cluster, loaded into typed dataclasses with loud validation.

    launch recipe.py --cluster local_slurm         # cluster_configs/local_slurm.yaml
    launch recipe.py --cluster ~/my_cluster.yaml   # any path

    cfg = load_cluster_config("local_slurm")
    cfg.slurm.time_limit_minutes                   # -> 5

`ClusterConfig` is the top level; each backend declares its own section next to its code
(`backends.slurm.SlurmConfig`, `backends.ray_config.RayConfig`), and `launcher.common.validate`
checks all of them: a misspelled key fails with the list of valid keys; a wrong type names the
field, the expected type and the value found. The schema is in cluster_configs/README.md.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends import BACKENDS
from backends.ray_config import RayConfig
from backends.slurm import SlurmConfig
from launcher.common.validate import from_dict
from launcher.errors import UserError

__all__ = [
    "ClusterConfig",
    "RayConfig",
    "SlurmConfig",
    "cluster_config_from_dict",
    "config_to_dict",
    "find_cluster_config",
    "load_cluster_config",
]

CONFIG_DIR_NAME = "cluster_configs"
REPO_ROOT = Path(__file__).resolve().parents[2]  # launcher/cli/ -> the repository


@dataclass
class ClusterConfig:
    """A cluster: which backend submits, where runs are tracked and written, and its settings."""

    backend: str = "local"
    tracking_uri: str | None = None  # MLflow tracking URI; None: MLflow's own default
    output_dir: str | None = None  # default --output-dir; None: ./outputs
    slurm: SlurmConfig | None = None
    ray: RayConfig | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(
                f"backend: unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}"
            )


def config_to_dict(config: ClusterConfig) -> dict[str, Any]:
    """The config as plain dicts and lists (what goes into `launch.json`)."""
    return dataclasses.asdict(config)


def cluster_config_from_dict(data: dict[str, Any], where: str = "cluster config") -> ClusterConfig:
    """Rebuild a `ClusterConfig` from a dict, e.g. `LaunchSpec.cluster` read back from JSON.

    Example: `cluster_config_from_dict(spec.cluster).slurm.partition`.
    """
    return from_dict(ClusterConfig, data or {}, where)


def find_cluster_config(path_or_name: str) -> Path:
    """Resolve `local_slurm` to `cluster_configs/local_slurm.yaml` (cwd first, then the repo);
    anything that looks like a path (has a `/` or ends in .yaml/.yml) is taken as a path."""
    expanded = Path(os.path.expandvars(os.path.expanduser(path_or_name)))
    looks_like_path = os.sep in path_or_name or expanded.suffix in (".yaml", ".yml")
    if looks_like_path:
        if not expanded.is_file():
            raise UserError(f"cluster config {path_or_name!r} not found: no file at {expanded}")
        return expanded
    searched = [Path.cwd() / CONFIG_DIR_NAME, REPO_ROOT / CONFIG_DIR_NAME]
    for folder in searched:
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{path_or_name}{suffix}"
            if candidate.is_file():
                return candidate
    available = sorted(
        {p.stem for folder in searched if folder.is_dir() for p in folder.glob("*.y*ml")}
    )
    raise UserError(
        f"cluster config {path_or_name!r} not found in {' or '.join(map(str, searched))}. "
        f"Available: {', '.join(available) or 'none'}; or pass a path to a YAML file."
    )


def load_cluster_config(path_or_name: str) -> ClusterConfig:
    """Load and validate a cluster YAML. `path_or_name`: a name in cluster_configs/ or a path.

    Example: `load_cluster_config("local_slurm").slurm.partition`.
    """
    import yaml  # only needed when a cluster config is used

    path = find_cluster_config(path_or_name)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{at}: invalid YAML: {problem}") from exc
    except OSError as exc:
        raise UserError(f"cannot read cluster config {path}: {exc.strerror}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return from_dict(ClusterConfig, data, "")
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from exc
