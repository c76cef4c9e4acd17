"""What a Ray run asks for: `RayConfig` (the cluster config's `ray:` section) and the Ray
Train settings that follow from it and the spec.

    settings = ray_config(spec)                         # RayConfig, validated
    ScalingConfig(**scaling_settings(spec, cluster_has_gpus=False))
    FailureConfig(max_failures=max_failures(spec))

Pure (no Ray import): `backends/ray.py` shows these numbers in a dry run and checks the
cluster's capacity with them, and `backends/ray_driver.py` builds the `TorchTrainer` from them
on the cluster, so both always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from launcher.common.validate import from_dict
from launcher.spec import LaunchSpec


@dataclass
class RayConfig:
    """Where the Ray cluster is and what each training worker gets.

    A misspelled key fails with the list of valid ones:
    `from_dict(RayConfig, {"adress": "auto"}, "ray")` -> `UserError`.
    """

    address: str | None = None  # None: start a local Ray for the run; "ray://host:10001"; "auto"
    storage_path: str | None = None  # shared storage for the run dirs; None: the run dir
    max_failures: int = 2  # Ray Train FailureConfig(max_failures=...)
    resources_per_worker: dict[str, float] = field(default_factory=dict)
    runtime_env: dict[str, Any] = field(default_factory=dict)
    num_cpus_per_worker: float = 1


def ray_config(spec: LaunchSpec) -> RayConfig:
    """The `ray:` section of the spec's cluster config, validated (defaults if absent)."""
    return from_dict(RayConfig, spec.cluster.get("ray") or {}, "ray")


def scaling_settings(spec: LaunchSpec, cluster_has_gpus: bool) -> dict[str, Any]:
    """The `ScalingConfig` arguments for `spec`: one worker per device, spread across nodes.

    Example: `ScalingConfig(**scaling_settings(spec, cluster_has_gpus=False))`.
    """
    settings = ray_config(spec)
    use_gpu = spec.accelerator == "gpu" or (spec.accelerator == "auto" and cluster_has_gpus)
    resources = {"CPU": float(settings.num_cpus_per_worker)}
    resources.update({k: float(v) for k, v in settings.resources_per_worker.items()})
    if use_gpu:
        resources.setdefault("GPU", 1.0)
    return {
        "num_workers": spec.world_size,
        "use_gpu": use_gpu,
        "resources_per_worker": resources,
        "placement_strategy": "SPREAD",
    }


def max_failures(spec: LaunchSpec) -> int:
    """Worker-group restarts allowed: `--max-restarts` if given, else the config's `max_failures`."""
    return spec.max_restarts or ray_config(spec).max_failures
