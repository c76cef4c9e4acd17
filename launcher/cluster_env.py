"""`ClusterEnvironment`: who is this process? The only code that reads rank variables.

    env = ClusterEnvironment.detect()
    env.global_rank, env.world_size, env.main_address, env.main_port

Detected, in order: Ray Train workers (`LAUNCHER_CLUSTER=ray`, set by our Ray driver),
torch's elastic launcher (`torchrun`, our local multi-process backend), SLURM tasks
(`SLURM_PROCID`), else a single process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterEnvironment:
    """Rank, world size and rendezvous address of the current process."""

    kind: str = "single"  # "single" | "torchrun" | "slurm" | "ray"
    global_rank: int = 0
    local_rank: int = 0
    node_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    main_address: str = "127.0.0.1"
    main_port: int = 29500
    job_id: str | None = None
    restart_count: int = 0  # how many times this job was restarted or requeued
    agent_store: bool = False  # torchrun's agent hosts the rendezvous store (not rank 0)
    # CPUs the scheduler gave this process (SLURM's per-task CPUs, Ray's per-worker CPUs);
    # None where nobody allots them (local runs). launcher/train/cpu_threads.py reads it.
    cpus_per_process: int | None = None

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0

    @classmethod
    def detect(cls, environ: Mapping[str, str] | None = None) -> ClusterEnvironment:
        env = os.environ if environ is None else environ
        if env.get("LAUNCHER_CLUSTER") == "ray":
            return cls._ray(env)
        if "TORCHELASTIC_RUN_ID" in env or ("RANK" in env and "WORLD_SIZE" in env):
            return cls._torchrun(env)
        if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
            return cls._slurm(env)
        return cls()

    @classmethod
    def _torchrun(cls, env: Mapping[str, str]) -> ClusterEnvironment:
        local_world = int(env.get("LOCAL_WORLD_SIZE", "1"))
        return cls(
            kind="torchrun",
            global_rank=int(env["RANK"]),
            local_rank=int(env.get("LOCAL_RANK", "0")),
            node_rank=int(env.get("GROUP_RANK", env.get("NODE_RANK", "0"))),
            world_size=int(env["WORLD_SIZE"]),
            local_world_size=local_world,
            main_address=env.get("MASTER_ADDR", "127.0.0.1"),
            main_port=int(env.get("MASTER_PORT", "29500")),
            job_id=env.get("TORCHELASTIC_RUN_ID"),
            restart_count=int(env.get("TORCHELASTIC_RESTART_COUNT", "0")),
            agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true",
        )

    @classmethod
    def _slurm(cls, env: Mapping[str, str]) -> ClusterEnvironment:
        job_id = env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID", "0")
        nodes = expand_hostlist(env.get("SLURM_JOB_NODELIST", env.get("SLURM_NODELIST", "")))
        world = int(env["SLURM_NTASKS"])
        num_nodes = int(env.get("SLURM_JOB_NUM_NODES", env.get("SLURM_NNODES", "1")))
        # Derive the port from the job id so concurrent jobs on a node don't collide.
        port = int(env.get("MASTER_PORT", 0)) or 15000 + int(re.sub(r"\D", "", job_id) or 0) % 20000
        return cls(
            kind="slurm",
            global_rank=int(env["SLURM_PROCID"]),
            local_rank=int(env.get("SLURM_LOCALID", "0")),
            node_rank=int(env.get("SLURM_NODEID", "0")),
            world_size=world,
            local_world_size=max(1, world // max(1, num_nodes)),
            main_address=env.get("MASTER_ADDR") or (nodes[0] if nodes else "127.0.0.1"),
            main_port=port,
            job_id=job_id,
            restart_count=int(env.get("SLURM_RESTART_COUNT", "0")),
            cpus_per_process=_slurm_cpus(env, max(1, world // max(1, num_nodes))),
        )

    @classmethod
    def _ray(cls, env: Mapping[str, str]) -> ClusterEnvironment:
        import ray.train

        ctx = ray.train.get_context()
        return cls(
            kind="ray",
            global_rank=ctx.get_world_rank(),
            local_rank=ctx.get_local_rank(),
            node_rank=ctx.get_node_rank(),
            world_size=ctx.get_world_size(),
            local_world_size=ctx.get_local_world_size(),
            main_address=env.get("MASTER_ADDR", "127.0.0.1"),
            main_port=int(env.get("MASTER_PORT", "29500")),
            # The submission id is what `ray://...` handles name (Ray's own job id is not).
            job_id=env.get("LAUNCHER_RAY_SUBMISSION_ID") or env.get("RAY_JOB_ID"),
            restart_count=int(env.get("LAUNCHER_RAY_ATTEMPT", "0")),
            cpus_per_process=_ray_cpus(),
        )


def _slurm_cpus(env: Mapping[str, str], tasks_on_node: int) -> int | None:
    """`--cpus-per-task` (SLURM_CPUS_PER_TASK); without it, the node's CPUs shared by its tasks.

    One process runs per task (backends/slurm_task.py), so a task's CPUs are its process's.
    """
    per_task = env.get("SLURM_CPUS_PER_TASK", "")
    if per_task.isdigit():
        return max(1, int(per_task))
    on_node = env.get("SLURM_CPUS_ON_NODE", "")
    return max(1, int(on_node) // tasks_on_node) if on_node.isdigit() else None


def _ray_cpus() -> int | None:
    """The CPUs Ray reserved for this worker (`num_cpus_per_worker`), whole ones, at least 1."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    return max(1, int(cpus)) if cpus else None


def expand_hostlist(hostlist: str) -> list[str]:
    """Expand SLURM's compressed host lists: `n[1-3,7],gpu01` -> [n1, n2, n3, n7, gpu01]."""
    hosts: list[str] = []
    for match in re.finditer(r"([^,\[]+)(?:\[([^\]]+)\])?", hostlist):
        prefix, ranges = match.group(1), match.group(2)
        if not ranges:
            hosts.append(prefix)
            continue
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            for i in range(int(lo), int(hi or lo) + 1):
                hosts.append(f"{prefix}{str(i).zfill(len(lo))}")
    return hosts
