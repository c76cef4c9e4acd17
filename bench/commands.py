"""Where people wait: SLURM against local throughput, submissions, and the query commands.

    python bench/commands.py                 # ~10 minutes on 2 cores; starts the test clusters
    python bench/commands.py --quick         # 1 epoch a training run, no warm-up round
    python bench/commands.py --only its,commands --reps 5

Every figure is a fresh `launch` process, the variants interleaved round by round
(`bench/common.interleave`), the median of `--reps` (at least 3) printed against its target:

- **its**: `bench/recipes/mlp.py`, 2 CPU processes, rank 0's steps per second from its first
  to its last step (the recipe's BENCH line): SLURM (2 nodes x 1 task of the test cluster,
  `cluster_configs/local_slurm.yaml`, `launch ... --wait`) over local (`--devices 2`);
  target >= 0.95. `--old-threads` adds SLURM with `--threads 2`: every core of the node per
  task, what SLURM runs got before threads followed the allocation.
- **submit**: `launch ... --backend slurm|ray` from the process's start until it prints
  "submitted" (the job is cancelled afterwards, untimed); target <= 1.0 s.
- **commands**: `launch jobs` and `launch status NAME` with one finished local job recorded
  (target <= 0.3 s), `launch runs` with 100 runs in the store (target <= 0.5 s; it shows 50);
  beside them, no target: `launch --help` and `python -c pass` (the interpreter's own start).

The machine is shared: the load average is printed with each section.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO_ROOT, fmt_spread, interleave, machine_line  # noqa: E402

RECIPE = str(REPO_ROOT / "bench" / "recipes" / "mlp.py")
PROBE = str(REPO_ROOT / "tests" / "recipes" / "threads_probe.py")
SLURM_SCRIPT = REPO_ROOT / "scripts" / "slurm_cluster.sh"
_BENCH_LINE = re.compile(r"BENCH loop_seconds=([\d.]+) loop_cpu=([\d.]+) steps=(\d+)")
LAUNCH = [sys.executable, "-c", "import sys; from launcher.cli import main; sys.exit(main())"]
TARGETS = {"its": 0.95, "submit": 1.0, "jobs": 0.3, "status": 0.3, "runs": 0.5}


class Bench:
    """One output dir, one job registry (LAUNCHER_HOME) and a counter for run names."""

    def __init__(self, out: Path, epochs: int) -> None:
        self.out, self.epochs, self.count = out, epochs, 0
        self.env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        self.env.update(PYTHONPATH=str(REPO_ROOT), LAUNCHER_HOME=str(out / "home"))

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}-{self.count}"

    def launch(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run([*LAUNCH, *args], env=env or self.env, capture_output=True,
                                text=True, timeout=900)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"launch {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def timed(
        self, *args: str, until: str | None = None, env: dict[str, str] | None = None
    ) -> float:
        """Seconds from starting `launch ARGS` until it exits, or until a line has `until`."""
        started = time.perf_counter()
        proc = subprocess.Popen([*LAUNCH, *args], env=env or self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        took = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if until is not None and took is None and until in line:
                took = time.perf_counter() - started
        _, err = proc.communicate()
        if proc.returncode != 0 or (until is not None and took is None):
            raise RuntimeError(f"launch {' '.join(args)} failed ({proc.returncode}): {err}")
        return took if took is not None else time.perf_counter() - started

    # -- its -------------------------------------------------------------------------------
    def steps_per_second(self, backend: str, *extra: str) -> float:
        name = self.name(backend)
        where = {"local": ["--devices", "2"],
                 "slurm": ["--backend", "slurm", "--cluster", "local_slurm", "--nodes", "2",
                           "--devices", "1", "--wait"]}[backend]  # fmt: skip
        self.launch(RECIPE, "--accelerator", "cpu", "--max-epochs", str(self.epochs),
                    "--output-dir", str(self.out), "--name", name, "--no-resume", *where, *extra)  # fmt: skip
        log = (self.out / "mlp" / name / "logs" / "rank0.log").read_text()
        found = _BENCH_LINE.findall(log)
        if not found:
            raise RuntimeError(f"no BENCH line in {name}'s rank 0 log:\n{log[-2000:]}")
        seconds, _cpu, steps = found[-1]
        return int(steps) / float(seconds)

    # -- submit ----------------------------------------------------------------------------
    def submit(self, backend: str, address: str | None = None) -> float:
        name = self.name(f"submit-{backend}")
        where = ["--cluster", "local_slurm"] if backend == "slurm" else ["--address", address or ""]
        took = self.timed(RECIPE, "--backend", backend, *where, "--accelerator", "cpu",
                          "--nodes", "2", "--devices", "1", "--max-epochs", "1", "--output-dir",
                          str(self.out), "--name", name, "--no-resume", until="submitted")  # fmt: skip
        subprocess.run([*LAUNCH, "cancel", name], env=self.env, capture_output=True, timeout=120)
        return took


def _bare_python(env: dict[str, str]) -> float:
    """A fresh interpreter that does nothing: the floor under every command's figure."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - started


def fill_store(store: Path, runs: int) -> None:
    """`runs` finished runs like ours (params, tags, 20 steps of two metrics) in a sqlite store."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    client = mlflow.MlflowClient(f"sqlite:///{store}/mlflow.db")
    experiment = client.create_experiment("mlp")
    now = int(time.time() * 1000)
    for i in range(runs):
        run = client.create_run(experiment, run_name=f"mlp-lr={i}", start_time=now - 60_000 + i)
        params = {"launch.nodes": "1", "launch.devices_per_node": "2", "trainer.precision": "32-true",
                  "lr": str(0.001 * i), "launch.backend": "local"}  # fmt: skip
        tags = {
            "launcher.recipe": RECIPE,
            "launcher.backend": "local",
            "launcher.state": "finished",
        }
        metrics = [Metric(key, 1.0 / (step + 1 + i), now + step, step)
                   for key in ("train_loss", "val_loss") for step in range(20)]  # fmt: skip
        client.log_batch(run.info.run_id, metrics=metrics,
                         params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])  # fmt: skip
        client.set_terminated(run.info.run_id, "FINISHED", end_time=now + i)


def ensure_slurm() -> None:
    status = subprocess.run([str(SLURM_SCRIPT), "status"], capture_output=True, timeout=60)
    if status.returncode != 0:
        subprocess.run([str(SLURM_SCRIPT), "start"], check=True, capture_output=True, timeout=600)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def report(what: str, values: list[float], target: float, unit: str = "s") -> str:
    """The figure against its target, printed at once (a later section may fail)."""
    median = statistics.median(values)
    ok = median >= target if what.endswith("its") else median <= target
    sign = ">=" if what.endswith("its") else "<="
    line = (f"{what}: median {fmt_spread(values, unit)}, n={len(values)}; "
            f"target {sign} {target:g}{unit}: {'met' if ok else 'MISSED'}")  # fmt: skip
    print(f"  {line}", flush=True)
    return line


def run_section(
    title: str, variants: dict[str, Callable[[], float]], reps: int, warmup: int
) -> dict[str, list[float]]:
    print(f"\n== {title} ({load()})", flush=True)
    times = interleave(variants, reps=reps, warmup=warmup)
    print(f"   after: {load()}", flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 epoch a run, no warm-up round")
    parser.add_argument("--only", default="its,submit,commands", help="comma-separated sections")
    parser.add_argument("--old-threads", action="store_true", help="also SLURM with --threads 2")
    parser.add_argument("--address", help="Ray job API (default: the local test cluster)")
    args = parser.parse_args()
    if args.reps < 3:
        parser.error("--reps: at least 3 (the figures are medians of >= 3)")
    sections = set(args.only.split(","))
    warmup = 0 if args.quick else 1
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-commands-") as tmp:
        bench = Bench(Path(tmp), epochs=1 if args.quick else 3)
        if sections & {"its", "submit"}:
            ensure_slurm()
        if "its" in sections:
            variants = {"local": lambda: bench.steps_per_second("local"),
                        "slurm": lambda: bench.steps_per_second("slurm")}  # fmt: skip
            if args.old_threads:
                variants["slurm --threads 2"] = lambda: bench.steps_per_second(
                    "slurm", "--threads", "2"
                )
            its = run_section("steps/s, 2 CPU processes", variants, args.reps, warmup)
            for name in its:
                print(f"  {name}: {fmt_spread(its[name], ' it/s')}")
            ratios = [s / b for s, b in zip(its["slurm"], its["local"], strict=True)]
            lines.append(report("slurm/local its", ratios, TARGETS["its"], unit="x"))
            if args.old_threads:
                old = [s / b for s, b in zip(its["slurm --threads 2"], its["local"], strict=True)]
                lines.append(
                    f"slurm --threads 2/local its (the old behaviour): {fmt_spread(old, 'x')}"
                )
        if "submit" in sections:
            from bench.ray_startup import ensure_cluster

            address, started_ray = (args.address, False) if args.address else ensure_cluster()
            for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):  # the cluster's token
                if key in os.environ:
                    bench.env[key] = os.environ[key]
            try:
                times = run_section("submit -> 'submitted'", {
                    "slurm": lambda: bench.submit("slurm"),
                    "ray": lambda: bench.submit("ray", address),
                }, args.reps, warmup)  # fmt: skip
            finally:
                if started_ray:
                    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "ray_cluster.sh"), "stop"],
                                   capture_output=True, timeout=120)  # fmt: skip
            for name, values in times.items():
                lines.append(report(f"submit {name}", values, TARGETS["submit"]))
        if "commands" in sections:
            home = {**bench.env, "LAUNCHER_HOME": str(Path(tmp) / "commands-home")}
            bench.launch(PROBE, "--accelerator", "cpu", "--output-dir", str(Path(tmp) / "local"),
                         "--name", "local-job", env=home)  # fmt: skip
            store = Path(tmp) / "store"
            store.mkdir()
            fill_store(store, 100)
            times = run_section("commands", {
                "jobs": lambda: bench.timed("jobs", env=home),
                "status": lambda: bench.timed("status", "local-job", env=home),
                "runs": lambda: bench.timed("runs", "--output-dir", str(store), env=home),
                "--help": lambda: bench.timed("--help", env=home),
                "python -c pass": lambda: _bare_python(home),
            }, max(args.reps, 5), 1)  # fmt: skip
            for name, values in times.items():
                if name in TARGETS:
                    lines.append(report(f"launch {name}", values, TARGETS[name]))
                else:  # no target: what the interpreter alone costs here, and the help
                    lines.append(f"{name}: median {fmt_spread(values)}")
                    print(f"  {lines[-1]}")
    print(f"\n{machine_line()}; {load()}")
    print("\n".join(f"commands.py: {line}" for line in lines))


if __name__ == "__main__":
    main()
