"""Ray backend: time from `RayBackend().submit` to the first training step, and to recovery.

    python bench/ray_startup.py               # ~4 minutes on 2 cores; local 2-node cluster
    python bench/ray_startup.py --reps 5 --no-recovery

On the already-running local 2-node Ray cluster (`scripts/ray_cluster.sh start`; started and
stopped here when it is not running), a 2-worker CPU run of `tests/recipes/ray_tiny.py`:

- **ray**: `RayBackend().submit(spec)` until rank 0 enters its first `training_step` (the
  recipe writes a marker file), then the job is cancelled. Includes packaging and uploading
  the code, the job driver, Ray Train's controller, the worker group and its process group,
  loading the recipe and the trainer's setup.
- **local**: the same run with the local backend (torchrun, 2 processes), the baseline.
- **recovery**: rank 1's worker process is SIGKILLed mid-run; time until the restarted group
  takes its first step (resumed from the checkpoint), and until Ray Train restarted rank 1.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.base import JobState  # noqa: E402
from backends.local import LocalBackend  # noqa: E402
from backends.ray import RayBackend  # noqa: E402
from backends.ray_driver import WORKER_STATE_DIR  # noqa: E402
from bench.common import REPO_ROOT, interleave, machine_line  # noqa: E402
from launcher.spec import LaunchSpec  # noqa: E402

RECIPE = str(REPO_ROOT / "tests" / "recipes" / "ray_tiny.py")
SCRIPT = REPO_ROOT / "scripts" / "ray_cluster.sh"


def make_spec(out: Path, name: str, backend: str, address: str, **overrides: str) -> LaunchSpec:
    markers = out / name / "markers"
    markers.mkdir(parents=True)
    spec = LaunchSpec(recipe=RECIPE, run_dir=str(out / name), name=name, experiment="bench",
                      backend=backend, nodes=2, devices_per_node=1, accelerator="cpu",
                      tracking_uri=f"sqlite:///{out}/mlflow.db",
                      overrides={"step_marker_dir": str(markers), **overrides},
                      cluster={"ray": {"address": address}})  # fmt: skip
    spec.write()
    return spec


def first_steps(spec: LaunchSpec) -> dict[str, float]:
    """pid -> when that rank-0 process took its first step."""
    found = {}
    for marker in (Path(spec.run_dir) / "markers").glob("first_step.*"):
        text = marker.read_text()
        if text:
            found[marker.suffix[1:]] = float(text)
    return found


def wait_until(predicate, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark run did not get there in time")
        time.sleep(0.05)


def ray_to_first_step(out: Path, address: str, counter: list[int]) -> float:
    counter[0] += 1
    spec = make_spec(out, f"ray{counter[0]}", "ray", address, step_sleep="0.5")
    backend = RayBackend()
    started = time.time()
    job = backend.submit(spec)
    wait_until(lambda: first_steps(spec))
    took = min(first_steps(spec).values()) - started
    backend.cancel(job)
    wait_until(lambda: backend.status(job).is_terminal(), timeout=120)
    return took


def local_to_first_step(out: Path, counter: list[int]) -> float:
    counter[0] += 1
    spec = make_spec(out, f"local{counter[0]}", "local", "")
    spec.max_steps = 2
    spec.write()
    started = time.time()
    runner = threading.Thread(target=LocalBackend().submit, args=(spec,))
    runner.start()
    wait_until(lambda: first_steps(spec))
    runner.join()
    return min(first_steps(spec).values()) - started


def recovery(out: Path, address: str) -> tuple[float, float]:
    """(SIGKILL -> rank 1 restarted, SIGKILL -> first step of the resumed group) in seconds."""
    spec = make_spec(out, "recovery", "ray", address, step_sleep="0.3")
    backend = RayBackend()
    job = backend.submit(spec)
    pid_file = Path(spec.run_dir) / WORKER_STATE_DIR / "rank1.pid"
    wait_until(lambda: first_steps(spec) and pid_file.exists())
    time.sleep(3)  # mid-run, past the first checkpoints
    victim = pid_file.read_text()
    before = set(first_steps(spec))
    os.kill(int(victim), signal.SIGKILL)
    killed = time.time()
    wait_until(lambda: pid_file.read_text() != victim, timeout=180)
    restarted = pid_file.stat().st_mtime - killed
    wait_until(lambda: set(first_steps(spec)) - before, timeout=180)
    resumed = min(t for pid, t in first_steps(spec).items() if pid not in before) - killed
    state = backend.wait(job, poll_seconds=0.5)
    if state != JobState.SUCCEEDED:
        raise RuntimeError(f"the killed run ended {state.value}")
    return restarted, resumed


def ensure_cluster() -> tuple[str, bool]:
    """The job API of the local test cluster (started if needed); True if we started it."""
    status = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True)
    started = status.returncode != 0
    if started:
        status = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True)
        status.check_returncode()
    printed = dict(line.partition("=")[::2] for line in status.stdout.splitlines() if "=" in line)
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
        if key in printed:
            os.environ[key] = printed[key]
    return printed["RAY_JOB_API"], started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-recovery", action="store_true")
    parser.add_argument("--address", help="job API of another cluster (default: local test one)")
    args = parser.parse_args()
    address, started = (args.address, False) if args.address else ensure_cluster()
    print(machine_line())
    try:
        with tempfile.TemporaryDirectory(prefix="ray_bench") as tmp:
            out, ray_count, local_count = Path(tmp), [0], [0]
            times = interleave(
                {
                    "ray": lambda: ray_to_first_step(out, address, ray_count),
                    "local": lambda: local_to_first_step(out, local_count),
                },
                reps=args.reps,
            )
            ray_median = statistics.median(times["ray"])
            local_median = statistics.median(times["local"])
            print(
                f"Ray backend, submit -> first training step on the running local 2-node "
                f"cluster (2 workers x 1 CPU): median {ray_median:.1f} s "
                f"(min {min(times['ray']):.1f}, max {max(times['ray']):.1f}, n={args.reps}); "
                f"local backend (torchrun, 2 processes): median {local_median:.1f} s"
            )
            if not args.no_recovery:
                restarted, resumed = recovery(out, address)
                print(
                    f"Ray backend, SIGKILL of a worker -> Ray Train restarted the group in "
                    f"{restarted:.1f} s; first step after resuming from the checkpoint "
                    f"{resumed:.1f} s after the kill (gloo notices the dead peer at once)"
                )
    finally:
        if started:
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True)


if __name__ == "__main__":
    main()
