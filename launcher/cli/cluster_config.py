"""Cluster configs: a YAML file per cluster, loaded into typed dataclasses with loud validation.

    launch recipe.py --cluster local_slurm         # cluster_configs/local_slurm.yaml
    launch recipe.py --cluster ~/my_cluster.yaml   # any path

    cfg = load_cluster_config("local_slurm")
    cfg.slurm.time_limit_minutes                   # -> 60

A misspelled key fails with the list of valid keys; a wrong type names the field, the expected
type and the value found. The schema is documented in cluster_configs/README.md.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from launcher.errors import UserError

CONFIG_DIR_NAME = "cluster_configs"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class SlurmConfig:
    """How to ask SLURM for resources. `gpus_per_node: 0` means "take it from `--gpus`"."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time_limit_minutes: int = 60
    mem_gb: int | None = None  # None: the partition's default
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    exclusive: bool = False
    setup: list[str] = field(default_factory=list)  # shell lines run before the workers
    extra_sbatch: dict[str, str] = field(default_factory=dict)  # e.g. {"mail-type": "END"}
    signal_grace_seconds: int = 60  # SIGUSR2 this long before the time limit
    max_requeues: int = 3
    python: str | None = None  # interpreter on the compute nodes; None: the submitting one
    log_dir: str | None = None  # None: RUN_DIR/logs


@dataclass
class RayConfig:
    """Where the Ray cluster is and what each training worker gets."""

    address: str | None = None  # None: start or join a local Ray; "ray://host:10001"; "auto"
    storage_path: str | None = None  # shared storage for Ray Train; None: the run dir
    max_failures: int = 2  # Ray Train FailureConfig(max_failures=...)
    resources_per_worker: dict[str, float] = field(default_factory=dict)
    runtime_env: dict[str, Any] = field(default_factory=dict)
    num_cpus_per_worker: float = 1


@dataclass
class ClusterConfig:
    """A cluster: which backend submits, where runs are tracked and written, and its settings."""

    backend: str = "local"
    tracking_uri: str | None = None  # MLflow tracking URI; None: MLflow's own default
    output_dir: str | None = None  # default --output-dir; None: ./outputs
    slurm: SlurmConfig | None = None
    ray: RayConfig | None = None

    def __post_init__(self) -> None:
        from backends import BACKENDS

        if self.backend not in BACKENDS:
            raise UserError(
                f"backend: unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}"
            )


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain dicts and lists (what goes into `launch.json`)."""
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


T = typing.TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    """Build dataclass `cls` from `data`, checking every key and value against its fields.

    `where` prefixes error messages (e.g. "slurm"): `slurm.time_limit_minutes: expected an
    int, got 'abc'`. Unknown keys fail with the list of valid keys.
    """
    if not isinstance(data, dict):
        raise UserError(f"{where or 'config'}: expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in valid]
    if unknown:
        import difflib

        hints_text = ""
        close = difflib.get_close_matches(str(unknown[0]), valid, n=1)
        if close:
            hints_text = f" (did you mean {close[0]!r}?)"
        section = f" in {where}" if where else ""
        raise UserError(
            f"unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}{section}{hints_text}. "
            f"Valid keys: {', '.join(valid)}"
        )
    values = {
        key: _check(hints[key], value, f"{where}.{key}" if where else key)
        for key, value in data.items()
    }
    return cls(**values)


def _check(annotation: Any, value: Any, where: str) -> Any:
    """Return `value` if it fits `annotation` (nested dataclasses are built); else UserError."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _check(option, value, where)
            except UserError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise UserError(f"{where}: expected {_type_name(annotation)}, got {_describe(value)}")
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value if value is not None else {}, where)
    if annotation is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {_describe(value)}")
        (item_type,) = typing.get_args(annotation) or (Any,)
        return [_check(item_type, item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {_describe(value)}")
        key_type, item_type = typing.get_args(annotation) or (Any, Any)
        return {
            _check(key_type, k, f"{where} key"): _check(item_type, v, f"{where}.{k}")
            for k, v in value.items()
        }
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML reads `qos: 1` or `time: 01:00` as numbers; sbatch wants text either way.
        return str(value)
    # bool is a subclass of int, but `time_limit_minutes: true` is a mistake.
    if isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)):
        return value
    raise UserError(f"{where}: expected {_type_name(annotation)}, got {_describe(value)}")


def _type_name(annotation: Any) -> str:
    names = {int: "an int", float: "a number", bool: "true or false", str: "a string"}
    if annotation in names:
        return names[annotation]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        options = [o for o in typing.get_args(annotation) if o is not type(None)]
        return " or ".join(_type_name(o) for o in options)
    return getattr(annotation, "__name__", str(annotation))


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'} ({value!r})"
    return repr(value)
