"""How many CPU threads torch uses in each training process: what the scheduler allotted it.

    choice = choose_threads(spec.threads, ClusterEnvironment.detect(), gpu=False)
    apply_threads(choice)                  # torch.set_num_threads, OMP/MKL for child processes
    choice.threads, choice.source          # -> 1, "SLURM_CPUS_PER_TASK=1"

Inside a SLURM task torch would start a thread per core it sees, though the task was given
fewer: the tasks of a node then fight over its cores (4-10x slower on CPU). The first rule
that applies decides:

1. `launch --threads N`;
2. `OMP_NUM_THREADS` when set: yours, or the launcher's under it (torchrun sets 1 when a node
   runs several processes, Ray the worker's `num_cpus_per_worker`, floored);
3. the scheduler's allotment (`ClusterEnvironment.cpus_per_process`: SLURM's
   `--cpus-per-task`, Ray's per-worker CPUs); on a GPU node half of it, at least 1, since the
   task's data-loader workers share those CPUs;
4. torch's own default (a thread per core it may use): a local single process.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from launcher.cluster_env import ClusterEnvironment


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count of this process and which rule chose it (for the params)."""

    threads: int
    source: str  # "--threads", "OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK=4", "torch default"
    set_by_us: bool = True  # False: torch's default, left as it is


def choose_threads(
    requested: int | None,
    env: ClusterEnvironment,
    gpu: bool,
    environ: MutableMapping[str, str] | None = None,
) -> ThreadChoice:
    """The thread count for this process by the rules above.

    Example: `choose_threads(None, ClusterEnvironment(kind="slurm", cpus_per_process=4),
    gpu=True)` -> `ThreadChoice(2, "SLURM_CPUS_PER_TASK=4 (half: GPU data loaders)")`.
    """
    environ = os.environ if environ is None else environ
    if requested is not None:
        return ThreadChoice(requested, "--threads")
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return ThreadChoice(int(omp), "OMP_NUM_THREADS")
    if env.cpus_per_process is not None:
        what = {"slurm": "SLURM_CPUS_PER_TASK", "ray": "num_cpus_per_worker"}.get(env.kind, "cpus")
        source = f"{what}={env.cpus_per_process}"
        if gpu:
            return ThreadChoice(
                max(1, env.cpus_per_process // 2), f"{source} (half: GPU data loaders)"
            )
        return ThreadChoice(env.cpus_per_process, source)
    import torch

    return ThreadChoice(torch.get_num_threads(), "torch default", set_by_us=False)


def apply_threads(choice: ThreadChoice, environ: MutableMapping[str, str] | None = None) -> None:
    """Set torch's intra-op threads, and `OMP_NUM_THREADS` (`MKL_NUM_THREADS` unless set) for
    the processes this one starts, which read them when their thread pools start."""
    if not choice.set_by_us:
        return
    import torch

    environ = os.environ if environ is None else environ
    torch.set_num_threads(choice.threads)
    environ["OMP_NUM_THREADS"] = str(choice.threads)
    environ.setdefault("MKL_NUM_THREADS", str(choice.threads))
