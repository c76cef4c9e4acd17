"""Per-fit overhead of `launcher.Trainer` against a hand-written PyTorch loop, on CPU.

    python bench/overhead.py               # ~4 minutes on 2 cores: 3000 steps, 3 x 7 rounds
    python bench/overhead.py --quick       # < 60 s: 900 steps, 3 rounds, one process
    python bench/overhead.py --profile     # cProfile of one Trainer fit, top functions

The workload (issue 2): a 784-128-10 MLP, Adam, batch 64 of in-memory random tensors, one
torch thread, 300 batches per epoch x 10 epochs = 3000 steps. Both sides iterate a
`DataLoader(TensorDataset, batch_size=64, shuffle=True)` over the same tensors.

- **bare**: the loop you would write by hand: zero_grad, forward, cross-entropy, backward,
  step. No logging, no checkpoints.
- **trainer (log_every_n_steps=N)**: a `launcher.Module` whose `training_step` logs
  `train_loss` every step with `prog_bar=True`; the default MLflow logger (`logger=True`,
  a local sqlite store in a temp dir); progress output on (plain lines, stdout redirected to
  a file, as in a SLURM log); the resume checkpoint the Trainer writes at every epoch end.
  Measured with `log_every_n_steps=1` (every step reaches MLflow) and with Lightning's
  default 50.

Each repetition times the whole `Trainer(...)` + `fit(...)` call in this process (a fresh
model, optimizer, Trainer and run directory each time) against the whole bare loop. The
MLflow store is created in the warm-up round and reused, like a user's second run; the cost
of a first run in a brand-new store is measured once, separately. Rounds are interleaved
(see `bench/common.py`) in each of 3 fresh processes, one after the other (`--processes`):
a process's memory layout shifts all of its fits by 1-2%, so, as pyperf does, the figure is
the median of the per-round ratios of all processes, target <= 1.05; each process's own
median is printed too.
Each side also reports time to first step (start-up), the loop from first to last step, and
what follows the last step (final checkpoint, logger shutdown); the process CPU time and the
training thread's CPU time (both barely disturbed by other jobs on a shared machine, unlike
wall-clock); and how long the training thread waited inside `MLflowLogger.flush()`.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

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
from launcher import Module, Trainer  # noqa: E402

TARGET = 1.05


class StepClock:
    """Wall-clock of the first and the latest training step (two attribute writes per step)."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0

    def tick(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now


class BenchMLP(Module):
    """The Trainer side: the same MLP, logging `train_loss` every step to the progress bar."""

    def __init__(self, clock: StepClock) -> None:
        super().__init__()
        self.net = make_mlp()
        object.__setattr__(self, "clock", clock)  # not a submodule, not checkpointed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        self.clock.tick()
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def loader(data: TensorDataset) -> DataLoader:
    return DataLoader(data, batch_size=BATCH, shuffle=True)


def run_bare(data: TensorDataset, epochs: int, phases: dict) -> float:
    clock = StepClock()
    start, cpu, tcpu = time.perf_counter(), time.process_time(), time.thread_time()
    torch.manual_seed(0)
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        for x, y in loader(data):
            clock.tick()
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    end = time.perf_counter()
    _record(phases, start, clock, end, time.process_time() - cpu, time.thread_time() - tcpu)
    return end - start


def run_trainer(data: TensorDataset, epochs: int, root: str, run_dir: str, log_every: int,
                phases: dict, log_path: str) -> float:  # fmt: skip
    clock = StepClock()
    with open(log_path, "a") as log, contextlib.redirect_stdout(log):
        start, cpu, tcpu = time.perf_counter(), time.process_time(), time.thread_time()
        flushed = FLUSH.seconds
        torch.manual_seed(0)
        model = BenchMLP(clock)
        trainer = Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            logger=True,
            log_every_n_steps=log_every,
            enable_progress_bar=True,
            default_root_dir=root,
            run_dir=run_dir,
            seed=0,
        )
        trainer.fit(model, train_dataloaders=loader(data))
        end = time.perf_counter()
    _record(phases, start, clock, end, time.process_time() - cpu, time.thread_time() - tcpu)
    phases.setdefault("flush_wait", []).append(FLUSH.seconds - flushed)
    return end - start


class FlushTimer:
    """Wall time the training thread spends inside `MLflowLogger.flush()` (waiting for sends)."""

    def __init__(self) -> None:
        from launcher.loggers.mlflow import MLflowLogger

        self.seconds = 0.0
        original = MLflowLogger.flush

        def timed_flush(logger, *args, **kwargs):
            start = time.perf_counter()
            try:
                return original(logger, *args, **kwargs)
            finally:
                if threading.current_thread() is threading.main_thread():
                    self.seconds += time.perf_counter() - start

        MLflowLogger.flush = timed_flush


FLUSH = FlushTimer()


def _record(phases: dict, start: float, clock: StepClock, end: float, cpu: float,
            thread_cpu: float) -> None:  # fmt: skip
    # CPU times barely move when other jobs share the cores, unlike wall-clock. Process CPU
    # counts every thread (the MLflow sender too); the training thread's is what a step costs.
    phases.setdefault("cpu", []).append(cpu)
    phases.setdefault("thread_cpu", []).append(thread_cpu)
    phases.setdefault("startup", []).append(clock.first - start)
    phases.setdefault("loop", []).append(clock.last - clock.first)
    phases.setdefault("after", []).append(end - clock.last)


def profile_trainer(data: TensorDataset, epochs: int, root: str, log_every: int) -> None:
    phases: dict = {}
    run_trainer(data, epochs, root, f"{root}/runs/warm", log_every, phases, f"{root}/out.log")
    profiler = cProfile.Profile()
    profiler.enable()
    run_trainer(data, epochs, root, f"{root}/runs/profiled", log_every, phases, f"{root}/out.log")
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs().sort_stats("tottime")
    stats.print_stats(30)


VARIANTS = ("bare", "trainer log/1", "trainer log/50")


def measure(epochs: int, rounds: int) -> dict:
    """One process's interleaved rounds: times, phases, the fresh-store fit, progress lines."""
    torch.set_num_threads(1)  # the spec: one thread, so the numbers don't depend on idle cores
    data = make_data(300)
    tmp = tempfile.TemporaryDirectory(prefix="bench-overhead-")
    root = tmp.name
    phases: dict[str, dict] = {name: {} for name in VARIANTS}
    counter = iter(range(10**6))
    log_path = f"{root}/progress.log"

    def trainer_variant(log_every: int):
        def run() -> float:
            run_dir = f"{root}/runs/log{log_every}-{next(counter)}"
            return run_trainer(data, epochs, root, run_dir, log_every,
                               phases[f"trainer log/{log_every}"], log_path)  # fmt: skip

        return run

    times = interleave(
        {
            "bare": lambda: run_bare(data, epochs, phases["bare"]),
            "trainer log/1": trainer_variant(1),
            "trainer log/50": trainer_variant(50),
        },
        reps=rounds,
    )
    # The warm-up round's phases are in the lists too: drop them.
    for parts in phases.values():
        for key in parts:
            parts[key] = parts[key][1:]
    fresh: dict = {}
    fresh_root = f"{root}/fresh-store"
    fresh_time = run_trainer(data, epochs, fresh_root, f"{fresh_root}/run", 1, fresh, log_path)
    with open(log_path) as f:
        lines = sum(1 for _ in f)
    return {"times": times, "phases": phases, "fits": len(times["bare"]) * 2 + 3, "lines": lines,
            "fresh": {"whole": fresh_time, "startup": fresh["startup"][0],
                      "after": fresh["after"][0]}}  # fmt: skip


def run_workers(processes: int, epochs: int, rounds: int) -> list[dict]:
    """`measure` in `processes` fresh interpreters, one after the other (why: module doc)."""
    results = []
    for index in range(processes):
        print(f"process {index + 1}/{processes}", flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--worker", "--epochs", str(epochs), "--rounds",
             str(rounds)],
            stdout=subprocess.PIPE, text=True, check=True,
        )  # fmt: skip
        *shown, last = out.stdout.strip().splitlines()
        print("\n".join(shown), flush=True)
        results.append(json.loads(last))
    return results


def report(results: list[dict]) -> None:
    """The table and summary lines over every process's rounds (ratios paired per round)."""
    times = {name: [t for r in results for t in r["times"][name]] for name in VARIANTS}
    phases = {name: {key: [v for r in results for v in r["phases"][name][key]]
                     for key in results[0]["phases"][name]} for name in VARIANTS}  # fmt: skip
    fresh = results[0]["fresh"]
    print()
    header = ("variant", "whole fit", "process CPU", "to first step", "loop", "after last step")
    print(f"{header[0]:<15}" + "".join(f"{h:>23}" for h in header[1:]))
    for name, parts in phases.items():
        cells = [times[name], parts["cpu"], parts["startup"], parts["loop"], parts["after"]]
        print(f"{name:<15}" + "".join(f"{fmt_spread(c):>23}" for c in cells))
    print(
        f"first fit in a new MLflow store (log/1): whole {fresh['whole']:.3f}s (the store is "
        f"created on the logger's thread while training runs), to first step "
        f"{fresh['startup']:.3f}s, after the last step {fresh['after']:.3f}s"
    )
    fits = sum(r["fits"] for r in results)
    print(f"progress output: {sum(r['lines'] for r in results)} plain lines written by {fits} fits")
    for name in ("trainer log/1", "trainer log/50"):
        parts = phases[name]
        thread = paired_ratios(parts["thread_cpu"], phases["bare"]["thread_cpu"])
        cpu = paired_ratios(parts["cpu"], phases["bare"]["cpu"])
        loop = paired_ratios(parts["loop"], phases["bare"]["loop"])
        print(f"  {name}: training-thread CPU ratio {thread.describe()}; process CPU ratio "
              f"{cpu.describe()}; first-to-last-step wall ratio {loop.describe()}; waiting in "
              f"MLflowLogger.flush() {fmt_spread(parts['flush_wait'])} per fit")  # fmt: skip
    if len(results) > 1:
        for name in ("trainer log/1", "trainer log/50"):
            each = [paired_ratios(r["times"][name], r["times"]["bare"]).median for r in results]
            print(f"  {name}: median ratio of each process " + ", ".join(f"{m:.3f}" for m in each))
    print()
    for name in ("trainer log/1", "trainer log/50"):
        stats = paired_ratios(times[name], times["bare"])
        print(summary_line("overhead.py", f"{name}/bare whole fit", stats, TARGET))
    print(machine_line())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="900 steps, 3 rounds, 1 process")
    parser.add_argument("--rounds", type=int, help="interleaved rounds a process (default 7)")
    parser.add_argument("--processes", type=int, help="processes measured in turn (default 3)")
    parser.add_argument("--epochs", type=int, help="epochs of 300 batches (default 10, quick 3)")
    parser.add_argument("--profile", action="store_true", help="cProfile one Trainer fit")
    parser.add_argument("--log-every", type=int, default=1, help="log_every_n_steps to profile")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 10)
    rounds = args.rounds or (3 if args.quick else 7)
    processes = args.processes or (1 if args.quick else 3)
    if args.profile:
        torch.set_num_threads(1)
        with tempfile.TemporaryDirectory(prefix="bench-overhead-") as root:
            profile_trainer(make_data(300), epochs, root, args.log_every)
        return 0
    if args.worker:
        print(json.dumps(measure(epochs, rounds)))
        return 0
    print(machine_line())
    print(f"workload: 784-128-10 MLP, Adam, batch {BATCH}, {epochs} epochs x 300 batches = "
          f"{epochs * 300} steps, 1 torch thread; {processes} process(es) x {rounds} "
          f"interleaved rounds, each after 1 warm-up")  # fmt: skip
    results = run_workers(processes, epochs, rounds) if processes > 1 else [measure(epochs, rounds)]
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
