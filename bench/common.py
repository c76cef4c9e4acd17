"""Shared helpers of the benchmarks: interleaved repetitions, paired ratios, the machine line.

    from bench.common import interleave, paired_ratios, machine_line

    times = interleave({"bare": run_bare, "trainer": run_trainer}, reps=5)
    stats = paired_ratios(times["trainer"], times["bare"])
    print(summary_line("overhead", "trainer/bare", stats))
    print(machine_line())

Every benchmark compares against a baseline measured in the same process run, one repetition
of each variant after the other, so slow drifts of a shared machine (other jobs, thermal, page
cache) hit both sides alike. The order inside a round alternates (A B, B A, A B, ...) so that
neither side always runs first. Ratios are per round (variant / baseline of the same round);
the figure is their median, the spread their min-max.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Benchmarks run as scripts (`python bench/x.py`): make the repo importable without install.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """`machine: AMD EPYC, 2 cores, torch 2.14.1, Python 3.11.2, Linux` (imports torch)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = ""
    if torch.cuda.is_available():
        gpu = f", {torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return (
        f"machine: {cpu_model()}, {cores} cores{gpu}, torch {torch.__version__}, "
        f"Python {platform.python_version()}, {platform.system()}"
    )


def interleave(
    variants: dict[str, Callable[[], float]], reps: int, warmup: int = 1, verbose: bool = True
) -> dict[str, list[float]]:
    """Run each variant `reps` times, round by round; returns name -> measured values.

    Each callable runs one repetition and returns its measurement (seconds, usually). The
    first `warmup` rounds are run and discarded (imports, allocator, page cache). Inside a
    round the order alternates between rounds so neither side always goes first.
    """
    names = list(variants)
    results: dict[str, list[float]] = {name: [] for name in names}
    for round_idx in range(warmup + reps):
        order = names if round_idx % 2 == 0 else names[::-1]
        measured = {name: variants[name]() for name in order}
        if round_idx < warmup:
            if verbose:
                print("  warm-up: " + "  ".join(f"{n}={measured[n]:.3f}" for n in names))
            continue
        for name in names:
            results[name].append(measured[name])
        if verbose:
            shown = "  ".join(f"{n}={measured[n]:.3f}" for n in names)
            print(f"  round {round_idx - warmup + 1}/{reps}: {shown}", flush=True)
    return results


@dataclass
class RatioStats:
    """Paired ratios of a variant over its baseline, one per round."""

    ratios: list[float]
    variant_median: float
    baseline_median: float

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def low(self) -> float:
        return min(self.ratios)

    @property
    def high(self) -> float:
        return max(self.ratios)

    def describe(self) -> str:
        """`1.031 (spread 1.012-1.060, n=5)`."""
        return f"{self.median:.3f} (spread {self.low:.3f}-{self.high:.3f}, n={len(self.ratios)})"


def paired_ratios(variant: list[float], baseline: list[float]) -> RatioStats:
    """Per-round ratios `variant[i] / baseline[i]` and both sides' medians."""
    if len(variant) != len(baseline) or not variant:
        raise ValueError("paired_ratios needs two equally long, non-empty lists")
    return RatioStats(
        ratios=[v / b for v, b in zip(variant, baseline, strict=True)],
        variant_median=statistics.median(variant),
        baseline_median=statistics.median(baseline),
    )


def summary_line(bench: str, what: str, stats: RatioStats, target: float | None = None,
                 unit: str = "s") -> str:  # fmt: skip
    """One line the README can quote: name, median ratio, spread, both medians, target."""
    verdict = ""
    if target is not None:
        verdict = f"; target <= {target:g}: {'met' if stats.median <= target else 'MISSED'}"
    return (
        f"{bench}: {what} median ratio {stats.describe()}; medians "
        f"{stats.variant_median:.3f}{unit} vs {stats.baseline_median:.3f}{unit}{verdict}"
    )


def fmt_spread(values: list[float], unit: str = "s") -> str:
    """`0.412s (0.398-0.440)`: median and min-max of raw values."""
    return f"{statistics.median(values):.3f}{unit} ({min(values):.3f}-{max(values):.3f})"


# -- the shared workload: a 784-128-10 MLP on in-memory random "images" --------------------
BATCH = 64


def make_mlp():
    """The benchmarks' MLP: Linear(784, 128) -> ReLU -> Linear(128, 10)."""
    from torch import nn

    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def make_data(batches: int, batch_size: int = BATCH):
    """`batches * batch_size` random 784-feature samples and labels, the same on every call."""
    import torch
    from torch.utils.data import TensorDataset

    gen = torch.Generator().manual_seed(0)
    n = batches * batch_size
    return TensorDataset(
        torch.randn(n, 784, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    )
