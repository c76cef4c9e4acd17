"""The Ray Job entrypoint: runs one training worker per process with Ray Train's TorchTrainer.

`backends/ray.py` submits it as a Ray Job; it runs on the cluster, inside the job's working
dir (the shipped `launch.json` and recipe file), with `launcher` and `backends` on the path:

    python -m backends.ray_driver launch.json
    python -m backends.ray_driver launch.json --worker my_module:main   # debugging hook

Every worker calls `launcher.worker.main(spec_path) -> int`, our Trainer unchanged. Ray Train
has already called `init_process_group` (gloo on CPU, nccl on GPU, `env://` rendezvous), so
`launcher/cluster_env.py` recognises Ray through `LAUNCHER_CLUSTER=ray` and reuses the group.
When a worker dies, Ray Train restarts the whole group (up to `max_failures` times) and our
trainer resumes from the newest checkpoint in the run directory.

`scaling_settings` is pure (no Ray import), so `RayBackend` shows the same numbers in a dry run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from launcher.spec import LaunchSpec

DEFAULT_WORKER = "launcher.worker:main"
# Same as launcher.train.distributed's default: a hung peer fails the group in 2 minutes, not 30.
# A peer that dies is noticed at once (its sockets close); see the README's Ray section.
PROCESS_GROUP_TIMEOUT_S = 120
USER_ERROR_EXIT_CODE = 2  # launcher.errors.USER_ERROR_EXIT_CODE; retrying cannot fix it
WORKER_STATE_DIR = "ray_workers"  # in the run dir: per-rank specs and restart counters


def scaling_settings(spec: LaunchSpec, cluster_has_gpus: bool) -> dict[str, Any]:
    """The `ScalingConfig` arguments for `spec`: one worker per device, spread across nodes.

    Example: `ScalingConfig(**scaling_settings(spec, cluster_has_gpus=False))`.
    """
    ray_cfg = spec.cluster.get("ray") or {}
    use_gpu = spec.accelerator == "gpu" or (spec.accelerator == "auto" and cluster_has_gpus)
    resources = {"CPU": float(ray_cfg.get("num_cpus_per_worker", 1))}
    resources.update({k: float(v) for k, v in (ray_cfg.get("resources_per_worker") or {}).items()})
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
    return spec.max_restarts or int((spec.cluster.get("ray") or {}).get("max_failures", 2))


def train_loop_per_worker(config: dict[str, Any]) -> int:
    """Runs in every Ray Train worker: our worker on a spec local to this process.

    The worker routes output itself: rank 0 prints (so its lines reach the Ray job's log),
    every rank appends to `RUN_DIR/logs/rank<N>.log`.
    """
    import ray.train

    rank = ray.train.get_context().get_world_rank()

    spec = LaunchSpec.from_dict(config["spec"])
    # The recipe travelled in the job's working dir, which is this process's cwd
    # (RAY_CHDIR_TO_TRIAL_DIR=0); its copy's path differs from node to node.
    spec.recipe = os.path.abspath(spec.recipe)
    state_dir = Path(spec.run_dir) / WORKER_STATE_DIR
    (state_dir / config["submission"]).mkdir(parents=True, exist_ok=True)
    # How many times Ray Train restarted this job's worker group before this start.
    attempt = _count_start(state_dir / config["submission"] / f"rank{rank}.starts")
    if attempt > 0 and spec.resume == "never":
        spec.resume = "auto"  # --no-resume ignored older runs' checkpoints, not this job's
    os.environ["LAUNCHER_CLUSTER"] = "ray"
    os.environ["LAUNCHER_RAY_ATTEMPT"] = str(attempt)
    spec_path = spec.write(str(state_dir / f"rank{rank}.launch.json"))
    (state_dir / f"rank{rank}.pid").write_text(str(os.getpid()))  # who to kill in drills

    code = _load(config["worker"])(spec_path)
    if code in (0, USER_ERROR_EXIT_CODE):
        return code  # rank 0's value reaches the driver; a user error is not retried
    # Anything else (a crash, 3 = "checkpointed on SIGTERM") restarts the group, which resumes.
    raise RuntimeError(f"rank {rank}: worker exited with code {code}")


def build_trainer(spec: LaunchSpec, worker: str = DEFAULT_WORKER) -> Any:
    """The `TorchTrainer` for `spec` (call inside a Ray job, or after `ray.init`)."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if not ray.is_initialized():
        ray.init(logging_level="WARNING")  # inside a Ray job: joins its cluster
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    scaling = scaling_settings(spec, cluster_has_gpus=has_gpus)
    submission = os.environ.get("LAUNCHER_RAY_SUBMISSION_ID") or f"pid{os.getpid()}"
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"spec": spec.to_dict(), "worker": worker, "submission": submission},
        torch_config=TorchConfig(timeout_s=PROCESS_GROUP_TIMEOUT_S),
        scaling_config=ScalingConfig(**scaling),
        run_config=RunConfig(
            # Ray Train keeps only its own bookkeeping here; our checkpoints live in the run
            # dir. One name per submission, so a resubmitted run never "restores" Ray state.
            name=f"ray_train-{submission}",
            storage_path=os.path.join(spec.run_dir, "ray_train"),
            failure_config=FailureConfig(max_failures=max_failures(spec)),
        ),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the spec's training on the cluster; return 0, 2 (user error) or 1 (failed)."""
    parser = argparse.ArgumentParser(prog="python -m backends.ray_driver")
    parser.add_argument("spec", help="launch.json shipped in the job's working dir")
    parser.add_argument("--worker", default=DEFAULT_WORKER, help="MODULE:FUNCTION(spec_path)")
    args = parser.parse_args(argv)
    spec = LaunchSpec.read(args.spec)
    print(
        f"launcher: {spec.name}: {spec.world_size} Ray Train workers, run dir {spec.run_dir}",
        flush=True,
    )
    result = build_trainer(spec, args.worker).fit()
    if result.error is not None:
        print(f"launcher: training failed: {result.error}", file=sys.stderr, flush=True)
        return 1
    return USER_ERROR_EXIT_CODE if result.return_value == USER_ERROR_EXIT_CODE else 0


def _count_start(path: Path) -> int:
    """Record one more start of this rank in this run; return how many came before."""
    try:
        previous = int(path.read_text())
    except (OSError, ValueError):
        previous = -1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(previous + 1))
    os.replace(tmp, path)
    return previous + 1


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr or "main")


if __name__ == "__main__":
    sys.exit(main())
