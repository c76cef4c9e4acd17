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

The scaling and failure settings come from `backends/ray_config.py`, the same functions
`RayBackend` uses for its dry run and its capacity check.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.ray_config import max_failures, scaling_settings
from backends.ray_logs import FilteredStream, RayLogFilter
from launcher.common.files import atomic_write_text
from launcher.errors import PROCESS_GROUP_TIMEOUT_S, USER_ERROR_EXIT_CODE
from launcher.spec import LaunchSpec

if TYPE_CHECKING:
    from ray.train.torch import TorchTrainer

DEFAULT_WORKER = "launcher.worker:main"
WORKER_STATE_DIR = "ray_workers"  # in the run dir: per-rank specs and restart counters


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
    atomic_write_text(state_dir / f"rank{rank}.pid", str(os.getpid()))  # who to kill in drills

    code = _load(config["worker"])(spec_path)
    if code in (0, USER_ERROR_EXIT_CODE):
        return code  # rank 0's value reaches the driver; retrying cannot fix a user error
    # Anything else (a crash, 3 = "checkpointed on SIGTERM") restarts the group, which resumes.
    raise RuntimeError(f"rank {rank}: worker exited with code {code}")


def build_trainer(spec: LaunchSpec, worker: str = DEFAULT_WORKER) -> TorchTrainer:
    """The `TorchTrainer` for `spec` (call inside a Ray job, or after `ray.init`)."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if not ray.is_initialized():
        ray.init(logging_level=logging.WARNING)  # inside a Ray job: joins its cluster
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    scaling = scaling_settings(spec, cluster_has_gpus=has_gpus)
    submission = os.environ.get("LAUNCHER_RAY_SUBMISSION_ID") or f"pid{os.getpid()}"
    return TorchTrainer(
        # Ray types the loop as returning None; what it returns is `Result.return_value`.
        train_loop_per_worker,  # type: ignore[arg-type]
        train_loop_config={"spec": spec.to_dict(), "worker": worker, "submission": submission},
        # A hung peer fails the group in minutes, not in torch's default 30; a peer that dies
        # is noticed at once (its sockets close). See the README's Ray section.
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
    streams = quiet_ray_output() if args.worker == DEFAULT_WORKER else []
    print(
        f"launcher: {spec.name}: {spec.world_size} Ray Train workers, run dir {spec.run_dir}",
        flush=True,
    )
    try:
        result = build_trainer(spec, args.worker).fit()
    finally:
        for stream in streams:
            stream.close_report()
    if result.error is not None:
        print(f"launcher: training failed: {result.error}", file=sys.stderr, flush=True)
        return 1
    # Ray Train v2's Result (the one that runs) carries the loop's return value; the stubs
    # mypy reads are v1's, which lack it.
    returned = result.return_value  # type: ignore[attr-defined]
    return USER_ERROR_EXIT_CODE if returned == USER_ERROR_EXIT_CODE else 0


def quiet_ray_output() -> list[FilteredStream]:
    """Unless `launch --verbose`: Ray prints every actor's lines through this process's
    sys.stdout/sys.stderr; keep the run's own and one line a failure (backends/ray_logs.py).
    Only for our worker, whose prefixed lines tell its output from Ray's; `--worker` shows all."""
    if os.environ.get("LAUNCHER_VERBOSE") == "1":
        return []
    log_filter = RayLogFilter()
    streams = [FilteredStream(sys.stdout, log_filter), FilteredStream(sys.stderr, log_filter)]
    sys.stdout, sys.stderr = streams
    return streams


def _count_start(path: Path) -> int:
    """Record one more start of this rank in this run; return how many came before."""
    try:
        previous = int(path.read_text())
    except (OSError, ValueError):
        previous = -1
    atomic_write_text(path, str(previous + 1))
    return previous + 1


def _load(target: str) -> Callable[[str], int]:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr or "main")


if __name__ == "__main__":
    sys.exit(main())
