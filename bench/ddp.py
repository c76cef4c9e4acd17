"""Two gloo processes on CPU: the launcher's local DDP path against a hand-written torchrun loop.

    python bench/ddp.py                # ~2-4 minutes on 2 cores: 1500 steps/rank, 5 rounds
    python bench/ddp.py --quick        # < 60 s: 150 steps/rank, 2 rounds

The workload of `bench/overhead.py` (784-128-10 MLP, Adam, batch 64 per process, 19200
random samples sharded over 2 ranks = 150 steps per epoch, 10 epochs), trained two ways:

- **launcher**: `backends.local.LocalBackend().submit(spec)` with a `LaunchSpec` of
  `devices_per_node=2, accelerator="cpu"` on `bench/recipes/mlp.py` (logger off by its
  `TRAINER`; progress output and epoch-end resume checkpoints on, as `launch` runs it). This
  is what `launch bench/recipes/mlp.py --accelerator cpu --devices 2` does after the CLI.
- **torchrun**: `python -m torch.distributed.run --nproc-per-node=2 bench/ddp.py --worker`,
  this file's hand-written loop: DistributedDataParallel, a DistributedSampler, no logging,
  no checkpoints.

Per round, both sides run once (order alternating); two ratios: whole-process wall time (from
starting the processes until they have all exited), and the steady-state training loop that
rank 0 of each side prints (first to last step). Target <= 1.05.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    BATCH,
    fmt_spread,
    interleave,
    machine_line,
    make_data,
    make_mlp,
    paired_ratios,
    summary_line,
)
from launcher.common.net import free_port  # noqa: E402

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "recipes" / "mlp.py"
TARGET = 1.05
BATCHES = 300  # of 64 samples: 150 per rank and epoch with 2 ranks
_BENCH_LINE = re.compile(r"BENCH loop_seconds=([\d.]+) loop_cpu=([\d.]+) steps=(\d+)")


# -- the hand-written loop (runs under torchrun) ------------------------------------------
def worker(epochs: int) -> None:
    """A plain DDP training loop; rank 0 prints the BENCH line."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler

    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = DistributedDataParallel(make_mlp())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = make_data(BATCHES)
    sampler = DistributedSampler(data, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=BATCH, sampler=sampler)
    first, last, steps = None, (0.0, 0.0), 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            now = time.perf_counter(), time.process_time()
            first = now if first is None else first
            last, steps = now, steps + 1
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    if dist.get_rank() == 0:
        wall, cpu = last[0] - first[0], last[1] - first[1]
        print(f"BENCH loop_seconds={wall:.6f} loop_cpu={cpu:.6f} steps={steps}", flush=True)
    dist.destroy_process_group()


# -- the two sides, as the driver runs them -------------------------------------------------
def parse_loop(text: str, where: str) -> tuple[float, float]:
    """(loop wall seconds, loop CPU seconds) from rank 0's BENCH line."""
    found = _BENCH_LINE.findall(text)
    if not found:
        raise RuntimeError(f"{where}: no BENCH line in its output:\n{text[-3000:]}")
    return float(found[-1][0]), float(found[-1][1])


def children_cpu() -> float:
    """CPU seconds of all waited-for descendants so far (agents and, through them, workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_torchrun(epochs: int, record: dict[str, list[float]]) -> float:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
           "--master-addr=127.0.0.1", f"--master-port={free_port()}",
           str(Path(__file__).resolve()), "--worker", f"--epochs={epochs}"]  # fmt: skip
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun loop failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    _record(record, elapsed, children_cpu() - cpu, parse_loop(proc.stdout, "torchrun loop"))
    return elapsed


WITH_DEFAULTS = {"trainer.enable_checkpointing": "true", "trainer.enable_progress_bar": "true"}


def run_launcher(
    epochs: int, root: Path, record: dict[str, list[float]], defaults: bool = False
) -> float:
    from backends.local import LocalBackend
    from launcher.spec import LaunchSpec

    run_dir = root / f"run-{len(record.get('wall', [])) + 1}"
    spec = LaunchSpec(recipe=str(RECIPE), run_dir=str(run_dir), name=run_dir.name,
                      experiment="bench-ddp", devices_per_node=2, accelerator="cpu",
                      max_epochs=epochs, resume="never",
                      overrides=WITH_DEFAULTS if defaults else {})  # fmt: skip
    spec.write()
    out_path = root / f"{run_dir.name}.out"
    start, cpu = time.perf_counter(), children_cpu()
    # The agents inherit our stdout/stderr: send rank 0's progress lines to a file.
    with open(out_path, "w") as out, _redirect_fds(out.fileno()):
        job = LocalBackend().submit(spec)
    elapsed = time.perf_counter() - start
    code = job.extra["exit_code"]
    if code != 0:
        raise RuntimeError(f"launcher run failed ({code}): see {out_path} and {run_dir}/logs")
    loop = parse_loop((run_dir / "logs" / "rank0.log").read_text(), "launcher run")
    _record(record, elapsed, children_cpu() - cpu, loop)
    return elapsed


def _record(record: dict, wall: float, cpu: float, loop: tuple[float, float]) -> None:
    for key, value in zip(("wall", "cpu", "loop", "loop_cpu"), (wall, cpu, *loop), strict=True):
        record.setdefault(key, []).append(value)


@contextlib.contextmanager
def _redirect_fds(fd: int):
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 epoch, 2 rounds, no warm-up (< 60 s)"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 2)")
    parser.add_argument("--epochs", type=int, help="epochs of 150 steps per rank (default 10)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--with-defaults",
        action="store_true",
        help="keep the Trainer's epoch-end checkpoints and progress output on (more work "
        "than the hand-written loop does)",
    )
    args = parser.parse_args(argv)
    epochs = args.epochs or (1 if args.quick else 10)
    if args.worker:
        worker(epochs)
        return 0
    rounds = args.rounds or (2 if args.quick else 5)
    steps = epochs * BATCHES // 2
    print(machine_line())
    warm = "no warm-up" if args.quick else "after 1 warm-up"
    print(f"workload: 784-128-10 MLP, Adam, 2 gloo processes x batch {BATCH}, {epochs} epochs "
          f"= {steps} steps per rank; {rounds} interleaved rounds {warm}")  # fmt: skip
    records: dict[str, dict[str, list[float]]] = {"launcher": {}, "torchrun": {}}
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        interleave(
            {
                "launcher": lambda: run_launcher(
                    epochs, Path(tmp), records["launcher"], args.with_defaults
                ),
                "torchrun": lambda: run_torchrun(epochs, records["torchrun"]),
            },
            reps=rounds,
            warmup=0 if args.quick else 1,
        )
    for record in records.values():
        for key in record:
            record[key] = record[key][-rounds:]  # drop the warm-up round
    print()
    print(
        f"{'side':<9}"
        + "".join(
            f"{h:>25}"
            for h in (
                "whole process",
                "processes' CPU",
                "rank-0 loop",
                "rank-0 loop CPU",
                "loop per step",
            )
        )
    )
    for name, rec in records.items():
        per_step = [t / steps * 1e3 for t in rec["loop"]]
        cells = [fmt_spread(rec[k]) for k in ("wall", "cpu", "loop", "loop_cpu")]
        print(
            f"{name:<9}" + "".join(f"{c:>25}" for c in cells) + f"{fmt_spread(per_step, 'ms'):>25}"
        )
    launcher, torchrun = records["launcher"], records["torchrun"]
    print()
    print(
        "CPU-time ratios (robust when other jobs share the cores): processes "
        f"{paired_ratios(launcher['cpu'], torchrun['cpu']).describe()}, rank-0 loop "
        f"{paired_ratios(launcher['loop_cpu'], torchrun['loop_cpu']).describe()}"
    )
    whole = paired_ratios(launcher["wall"], torchrun["wall"])
    loop = paired_ratios(launcher["loop"], torchrun["loop"])
    print(summary_line("ddp.py", "launcher/torchrun whole process", whole, TARGET))
    print(summary_line("ddp.py", "launcher/torchrun steady-state loop", loop, TARGET))
    print(machine_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
