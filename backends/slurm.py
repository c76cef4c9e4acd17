"""The SLURM backend: we render the sbatch script, sbatch gets it as is, submitit runs the task.

    launch recipe.py --backend slurm --nodes 2 --gpus 8 --cluster cluster_configs/my.yaml
    launch recipe.py --backend slurm --cluster local_slurm --dry-run   # print the sbatch script

    backend = SlurmBackend()
    plan = backend.plan(spec)                   # SlurmPlan: the script, nothing written yet
    job = backend.submit(plan)                  # Job(handle="slurm://42", ...)
    backend.status(job)                         # JobState.RUNNING
    for line in backend.logs(job, rank=1, follow=True): print(line, end="")

Settings are the cluster config's `slurm:` section, `SlurmConfig` below. The job asks for
`--nodes`, one task per device, `--signal=USR2@<grace>`, `--requeue` and
`--open-mode=append`; each task runs `backends.slurm_task.SlurmTask`, which calls
`launcher.worker.main(RUN_DIR/launch.json)` and requeues the job after a checkpoint on a
preemption or time-limit signal.

The script is ours (`SlurmPlan.render`), so the dry run is byte for byte what sbatch receives;
submitit, through its public helpers, pickles the task (`DelayedSubmission`), names the files
its in-job runner reads (`JobPaths`) and runs the task on every node
(`python -m submitit.core._submit FOLDER`, the line submitit's own executor writes). The
folder (`RUN_DIR/slurm` unless `slurm.log_dir`) keeps the script, the pickles and the per-task
logs `<job>_<task>_log.out`. Job states come from `scontrol show job` (no accounting database
needed), then from the outcome file the job leaves behind once SLURM has forgotten it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from backends.base import Backend, Job, JobState, Plan, follow_file, undone_on_refusal
from backends.scontrol import SLURM_STATES, job_state, show
from backends.slurm_task import SlurmTask, outcome_path, write_outcome
from launcher.common.files import atomic_write_text
from launcher.common.validate import from_dict
from launcher.errors import UserError
from launcher.spec import LaunchSpec

__all__ = [
    "SLURM_STATES",
    "SlurmBackend",
    "SlurmConfig",
    "SlurmPlan",
    "capacity_problem",
    "check_cluster",
]

_FOLLOW_POLL_S = 0.5
_STATE_POLL_S = 5.0  # how often `logs --follow` asks SLURM whether the job ended
_NOT_INSTALLED = (
    "sbatch not found: SLURM's client tools are not installed here (or not on PATH). Run "
    "launch on a login node of your cluster, or start the local test cluster as root: "
    "scripts/slurm_cluster.sh start"
)
# submitit's in-job runner: loads <folder>/<job id>_submitted.pkl and calls it on every task.
_RUNNER = "-u -m submitit.core._submit"


@dataclass
class SlurmConfig:
    """How to ask SLURM for resources: the cluster config's `slurm:` section.

    `gpus_per_node: 0` means "take it from `--gpus`". A misspelled key fails with the list of
    valid ones: `from_dict(SlurmConfig, {"partiton": "gpu"}, "slurm")` -> `UserError`.
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time_limit_minutes: int = 60
    mem_gb: int | None = None  # None: the partition's default
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    exclusive: bool = False
    setup: list[str] = field(default_factory=list)  # shell lines run before the workers
    extra_sbatch: dict[str, str] = field(default_factory=dict)  # e.g. {"mail-type": "END"}
    signal_grace_seconds: int = 60  # SIGUSR2 this long before the time limit
    max_requeues: int = 3
    python: str | None = None  # interpreter on the compute nodes; None: the submitting one
    log_dir: str | None = None  # None: RUN_DIR/slurm


@dataclass
class SlurmPlan(Plan):
    """One sbatch submission: the script's parts and the task every SLURM task runs.

    `render()` is the script sbatch receives: `#SBATCH` directives (sorted), the setup lines,
    the `srun` line and a note on what each task runs.
    """

    folder: Path  # the script, the task pickle and the per-task logs
    directives: dict[str, str | int | bool]  # `#SBATCH --key=value`; True: a bare `--key`
    setup: list[str]
    command: str  # the srun line
    notes: list[str]  # comment lines at the end
    task: SlurmTask
    slurm: SlurmConfig

    def render(self) -> str:
        flags = [_flag(key, self.directives[key]) for key in sorted(self.directives)]
        setup = ["", "# setup", *self.setup] if self.setup else []
        lines = [
            "#!/bin/bash", "", "# Parameters", *flags, *setup,
            "", "# command", "export SUBMITIT_EXECUTOR=slurm", self.command, "", *self.notes,
        ]  # fmt: skip
        return "\n".join(lines) + "\n"


def slurm_config(spec: LaunchSpec) -> SlurmConfig:
    """The `slurm:` section of the spec's cluster config, validated (defaults if absent)."""
    return from_dict(SlurmConfig, spec.cluster.get("slurm") or {}, "slurm")


def job_folder(spec: LaunchSpec, slurm: SlurmConfig) -> Path:
    """The job's folder: its script, the task pickle and per-task logs (absolute)."""
    folder = Path(slurm.log_dir).expanduser() if slurm.log_dir else Path(spec.run_dir) / "slurm"
    return folder.absolute()


def sbatch_directives(
    spec: LaunchSpec, slurm: SlurmConfig, folder: Path
) -> dict[str, str | int | bool]:
    """The `#SBATCH` options of `spec`'s job; `slurm.extra_sbatch` may override any of them."""
    optional = {
        "partition": slurm.partition,
        "account": slurm.account,
        "qos": slurm.qos,
        "constraint": slurm.constraint,
        "mem": f"{slurm.mem_gb}GB" if slurm.mem_gb else None,
        "exclusive": True if slurm.exclusive else None,
        "gpus-per-node": spec.devices_per_node if spec.accelerator in ("gpu", "cuda") else None,
    }
    return {
        "job-name": spec.name,
        "nodes": spec.nodes,
        "ntasks-per-node": spec.devices_per_node,
        "cpus-per-task": slurm.cpus_per_task,
        "time": slurm.time_limit_minutes,
        **{key: value for key, value in optional.items() if value is not None},
        "output": str(folder / "%j_0_log.out"),  # the batch step's; srun writes each task's
        "open-mode": "append",  # a requeued job continues its logs instead of truncating them
        # Our trainer checkpoints on USR2, `grace` seconds before the time limit.
        "signal": f"USR2@{slurm.signal_grace_seconds}",
        "requeue": True,
        "wckey": "submitit",  # what submitit's executor sets: accounting groups them as before
        # `job_name` and `job-name` are one sbatch option: the user's replaces ours.
        **{key.replace("_", "-"): value for key, value in slurm.extra_sbatch.items()},
    }


def srun_command(slurm: SlurmConfig, folder: Path) -> str:
    """The script's srun line: every task runs submitit's runner on the pickled task."""
    srun = [
        "srun", "--unbuffered", "--output", str(folder / "%j_%t_log.out"),
        # A crashed rank ends the whole step at once instead of leaving peers in a collective.
        "--kill-on-bad-exit=1",
    ]  # fmt: skip
    return f"{shlex.join(srun)} {task_python(slurm)} {_RUNNER} {shlex.quote(str(folder))}"


def worker_command(spec: LaunchSpec, slurm: SlurmConfig) -> str:
    """The command line equivalent of what each task runs (through the pickled SlurmTask)."""
    python = slurm.python or shlex.quote(sys.executable)
    return f"{python} -m launcher.worker {shlex.quote(spec.spec_path)}"


def task_python(slurm: SlurmConfig) -> str:
    """The interpreter command each task starts with.

    SIGUSR2 kills a process that has no handler yet. A preemption landing in the second or two
    before the task installs its handler would fail the job instead of requeueing it, so the
    default interpreter starts with USR2 ignored (the ignore survives `exec`). A custom
    `slurm.python` (any shell command prefix) is used as given.
    """
    if slurm.python:
        return slurm.python
    return f"""/bin/sh -c 'trap "" USR2; exec "$0" "$@"' {shlex.quote(sys.executable)}"""


class SlurmBackend(Backend[SlurmPlan]):
    """Submit runs as SLURM batch jobs and ask SLURM about them."""

    name = "slurm"

    def plan(self, spec: LaunchSpec) -> SlurmPlan:
        slurm = slurm_config(spec)
        folder = job_folder(spec, slurm)
        return SlurmPlan(
            spec,
            folder=folder,
            directives=sbatch_directives(spec, slurm, folder),
            setup=list(slurm.setup),
            command=srun_command(slurm, folder),
            notes=_task_note(spec, slurm),
            task=SlurmTask(spec.spec_path, slurm.max_requeues, slurm.signal_grace_seconds),
            slurm=slurm,
        )

    def schedule(self, plan: SlurmPlan) -> Job:
        check_cluster(plan.spec, plan.slurm)
        with undone_on_refusal(plan.folder):  # `slurm.log_dir` may be outside the run dir
            job_id = _sbatch(plan)
        return self.new_job(
            plan.spec, job_id, folder=str(plan.folder), world_size=plan.spec.world_size
        )

    def status(self, job: Job) -> JobState:
        info, error = _show_job(job.native_id)
        if info:
            return job_state(info)
        recorded = outcome_path(_folder(job), job.native_id)
        if recorded.is_file():  # SLURM forgot it (MinJobAge); the job left its outcome
            return JobState(json.loads(recorded.read_text())["state"])
        if "Invalid job id" in error:
            # Gone from SLURM without an outcome: killed (node failure, time limit without a
            # requeue, scancel outside launch) before the worker could report.
            return JobState.FAILED
        return JobState.UNKNOWN  # the controller did not answer

    def logs(self, job: Job, rank: int | None = None, follow: bool = False) -> Iterator[str]:
        rank = rank or 0
        world_size = int(job.extra.get("world_size", 0))
        if rank < 0 or (world_size and rank >= world_size):
            raise UserError(f"--rank {rank}: job {job.handle} has ranks 0 to {world_size - 1}")
        if follow:
            next_ask = [0.0]

            def ended() -> bool:
                # The log is read every _FOLLOW_POLL_S, the controller asked at most every
                # _STATE_POLL_S: each `scontrol` takes CPU from the job's own tasks when they
                # share the host (`launch --wait` on a small node). The outcome file the job
                # writes when it ends is looked at every time.
                now = time.monotonic()
                if now < next_ask[0] and not outcome_path(_folder(job), job.native_id).is_file():
                    return False
                next_ask[0] = now + _STATE_POLL_S
                return self.status(job).is_terminal()

            return follow_file(lambda: _log_file(job, rank), ended, _FOLLOW_POLL_S)
        if not _log_file(job, rank).is_file():
            raise UserError(
                f"no log for rank {rank} of {job.handle} yet ({self.status(job).value}); "
                f"try again when it runs, or use --follow"
            )
        return follow_file(_log_file(job, rank), done=lambda: True)

    def cancel(self, job: Job) -> None:
        if not shutil.which("scancel"):
            raise UserError(_NOT_INSTALLED.replace("sbatch", "scancel", 1))
        state = self.status(job)
        if state.is_terminal():
            raise UserError(f"{job.handle} already ended ({state.value}); nothing to cancel")
        # Recorded first: a worker that checkpoints on scancel's SIGTERM must not requeue.
        write_outcome(_folder(job), job.native_id, JobState.CANCELLED.value)
        result = subprocess.run(["scancel", job.native_id], capture_output=True, text=True)
        if result.returncode != 0:
            outcome_path(_folder(job), job.native_id).unlink(missing_ok=True)
            raise UserError(f"scancel {job.native_id} failed: {result.stderr.strip()}")


def check_cluster(spec: LaunchSpec, slurm: SlurmConfig) -> None:
    """Fail early, as a `UserError`, on what sbatch would reject or leave pending forever."""
    if shutil.which("sbatch") is None:
        raise UserError(_NOT_INSTALLED)
    try:
        records, error = show("partition")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"cannot reach the SLURM controller: {exc}") from exc
    if error:
        raise UserError(f"cannot reach the SLURM controller: {error}")
    partitions = {r["PartitionName"]: r for r in records if "PartitionName" in r}
    default = next((n for n, f in partitions.items() if f.get("Default") == "YES"), None)
    name = slurm.partition or default
    listing = ", ".join(f"{n} (default)" if n == default else n for n in partitions) or "none"
    if name is None or name not in partitions:
        what = f"partition {name!r} does not exist" if name else "no partition given, no default"
        raise UserError(f"{what}; this cluster has: {listing}. Set slurm.partition in the "
                        "cluster config")  # fmt: skip
    total = int(partitions[name].get("TotalNodes", "0") or 0)
    if spec.nodes > total:
        raise UserError(f"--nodes {spec.nodes} is more than partition {name!r} has ({total} "
                        f"nodes); ask for at most {total}, or pick another partition: {listing}")  # fmt: skip
    try:
        nodes, _ = show("node")
    except (OSError, subprocess.TimeoutExpired):
        return  # the partition answered; sbatch will say the rest
    directives = sbatch_directives(spec, slurm, Path("."))
    problem = capacity_problem(name, nodes, spec.nodes, directives)
    if problem:
        raise UserError(f"{problem}; or pick another partition: {listing}")


def capacity_problem(
    partition: str,
    nodes: list[dict[str, str]],
    want_nodes: int,
    directives: dict[str, str | int | bool],
) -> str | None:
    """Why no `want_nodes` nodes of `partition` can hold the job's per-node request, or None.

    A request no node can meet pends forever (`Reason=PartitionConfig`), so it is refused at
    submission, as Ray refuses it. `nodes` are `scontrol show node -o` records.
    Example: `capacity_problem("low", [{"NodeName": "n1", "Partitions": "low", "CPUTot": "2"}],
    1, {"ntasks-per-node": 3, "cpus-per-task": 1})` -> "... 3 CPUs per node ...".
    """
    members = [n for n in nodes if partition in n.get("Partitions", "").split(",")]
    if not members:
        return None  # nothing known about its nodes: let sbatch decide
    cpus = int(directives.get("ntasks-per-node", 1)) * int(directives.get("cpus-per-task", 1))
    gpus = int(directives.get("gpus-per-node", 0) or 0)
    fit = [n for n in members if _int(n.get("CPUTot")) >= cpus and _gpus(n) >= gpus]
    if len(fit) >= want_nodes:
        return None
    most_cpus = max(_int(n.get("CPUTot")) for n in members)
    most_gpus = max(_gpus(n) for n in members)
    if gpus and most_gpus == 0:
        return (f"--gpus {gpus} per node, but partition {partition!r} has no GPUs (its nodes "
                "declare no gpu GRES); train on CPU with --accelerator cpu, or use a GPU "
                "partition")  # fmt: skip
    tasks = directives.get("ntasks-per-node", 1)
    need = [f"{cpus} CPUs ({tasks} tasks x {directives.get('cpus-per-task', 1)} cpus_per_task)"]
    if gpus:
        need.append(f"{gpus} GPUs")
    return (f"{want_nodes} node(s) with {' and '.join(need)} each requested, but "
            f"{len(fit)} node(s) of partition {partition!r} can hold that (its largest have "
            f"{most_cpus} CPUs, {most_gpus} GPUs): ask for fewer --devices/--gpus per node or "
            "a smaller slurm.cpus_per_task")  # fmt: skip


def _int(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


def _gpus(node: dict[str, str]) -> int:
    """GPUs a node declares: `Gres=gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:2,gpu:v100:2` -> 4."""
    total = 0
    for item in node.get("Gres", "").split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and len(parts) > 1 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def _sbatch(plan: SlurmPlan) -> str:
    """Pickle the task, hand `plan.render()` to sbatch, name the files for the runner."""
    from submitit.core.utils import JobPaths
    from submitit.helpers import DelayedSubmission

    plan.folder.mkdir(parents=True, exist_ok=True)
    stem = plan.folder / f".submission_{uuid.uuid4().hex}"
    pickle_tmp, script_tmp = stem.with_suffix(".pkl"), stem.with_suffix(".sh")
    delayed = DelayedSubmission(plan.task)
    # What submitit's executor records for its own timeout bookkeeping, so the runner sees
    # the same pickle it would.
    delayed.set_timeout(plan.slurm.time_limit_minutes, plan.slurm.max_requeues)
    delayed.dump(pickle_tmp)
    atomic_write_text(script_tmp, plan.render())
    result = subprocess.run(
        ["sbatch", "--parsable", str(script_tmp)], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        # sbatch repeats some errors (GRES ones twice): each line once.
        said = "\n".join(dict.fromkeys(line for line in result.stderr.strip().splitlines()))
        raise UserError(f"sbatch refused the job: {said}")
    job_id = result.stdout.strip().split(";")[0]  # --parsable: "ID" or "ID;CLUSTER"
    paths = JobPaths(plan.folder, job_id)
    # The runner waits (up to a minute) for the pickle under its job's name; a rename is atomic.
    os.replace(pickle_tmp, paths.submitted_pickle)
    os.replace(script_tmp, paths.submission_file)
    return job_id


def _flag(key: str, value: str | int | bool) -> str:
    return f"#SBATCH --{key}" if value is True else f"#SBATCH --{key}={shlex.quote(str(value))}"


def _task_note(spec: LaunchSpec, slurm: SlurmConfig) -> list[str]:
    return [
        f"# Each of the {spec.world_size} tasks ({spec.nodes} nodes x {spec.devices_per_node}) "
        "runs the pickled backends.slurm_task.SlurmTask,",
        "# which calls launcher.worker.main(spec_path), the same as:",
        f"#   {worker_command(spec, slurm)}",
        f"# and requeues the job (at most {slurm.max_requeues} times) after a checkpoint on "
        "SIGUSR2/SIGTERM.",
    ]


def _folder(job: Job) -> Path:
    return Path(job.extra.get("folder") or Path(job.run_dir) / "slurm")


def _log_file(job: Job, rank: int) -> Path:
    # Ranks > 0 print to RUN_DIR/logs/rank<N>.log (the worker routes their output there);
    # submitit's per-task file then holds only the lines before the worker started.
    rank_log = Path(job.run_dir) / "logs" / f"rank{rank}.log"
    if rank > 0 and rank_log.is_file():
        return rank_log
    return _folder(job) / f"{job.native_id}_{rank}_log.out"


def _show_job(job_id: str) -> tuple[dict[str, str], str]:
    """(`scontrol show job -o` fields, error text); fields are {} when SLURM has no answer."""
    if shutil.which("scontrol") is None:
        raise UserError(_NOT_INSTALLED.replace("sbatch", "scontrol", 1))
    records, error = show("job", job_id)
    return (records[0] if records else {}), error
