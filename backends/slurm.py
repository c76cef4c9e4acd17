"""The SLURM backend: submitit renders and submits the sbatch script; every task runs the worker.

    launch recipe.py --backend slurm --nodes 2 --gpus 8 --cluster cluster_configs/my.yaml
    launch recipe.py --backend slurm --cluster local_slurm --dry-run   # print the sbatch script

    backend = SlurmBackend()
    job = backend.submit(spec)                  # Job(handle="slurm://42", ...)
    backend.status(job)                         # JobState.RUNNING
    for line in backend.logs(job, rank=1, follow=True): print(line, end="")

Settings come from the cluster config's `slurm:` section (`launcher.cli.cluster_config.SlurmConfig`). The
job asks for `--nodes`, one task per device, `--signal=USR2@<grace>`, `--requeue` and
`--open-mode=append`; each task runs `backends.slurm_task.SlurmTask`, which calls
`launcher.worker.main(RUN_DIR/launch.json)` and requeues the job after a checkpoint on a
preemption or time-limit signal. submitit's files (script, pickles, per-task logs
`<job>_<task>_log.out`) live in `RUN_DIR/slurm` unless `slurm.log_dir` says otherwise.
Job states come from `scontrol show job` (no accounting database needed), then from the
outcome file the job leaves behind once SLURM has forgotten it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backends.base import Backend, DryRun, Job, JobState
from backends.slurm_task import SlurmTask, outcome_path, write_outcome
from launcher.cli.cluster_config import SlurmConfig, cluster_config_from_dict
from launcher.errors import UserError
from launcher.spec import LaunchSpec

# Every SLURM job state (`scontrol`/`squeue` long names) -> our one enum. Users never see these.
SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "SUSPENDED": JobState.PENDING,  # paused by the scheduler; it resumes by itself
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,  # tasks ended, epilog still running
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "REQUEUED": JobState.REQUEUED,
    "REQUEUE_FED": JobState.REQUEUED,
    "REQUEUE_HOLD": JobState.REQUEUED,
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,  # a federated sibling ran it instead
    "PREEMPTED": JobState.CANCELLED,  # ended by preemption without a requeue
    "TIMEOUT": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
}

_FOLLOW_POLL_S = 0.5
_NOT_INSTALLED = (
    "sbatch not found: SLURM's client tools are not installed here (or not on PATH). Run "
    "launch on a login node of your cluster, or start the local test cluster as root: "
    "scripts/slurm_cluster.sh start"
)


def slurm_config(spec: LaunchSpec) -> SlurmConfig:
    """The `slurm:` section of the spec's cluster config, validated (defaults if absent)."""
    return cluster_config_from_dict(spec.cluster).slurm or SlurmConfig()


def job_folder(spec: LaunchSpec, slurm: SlurmConfig) -> Path:
    """submitit's folder for this run: scripts, pickles and per-task logs."""
    return Path(slurm.log_dir).expanduser() if slurm.log_dir else Path(spec.run_dir) / "slurm"


def sbatch_parameters(spec: LaunchSpec, slurm: SlurmConfig) -> dict[str, Any]:
    """submitit `SlurmExecutor.update_parameters` arguments for `spec`."""
    extra: dict[str, Any] = {
        # Set explicitly: submitit's default follows $SUBMITIT_PREEMPT_SIGNAL; our trainer
        # listens for USR2.
        "signal": f"USR2@{slurm.signal_grace_seconds}",
        "requeue": True,
        **slurm.extra_sbatch,
    }
    params: dict[str, Any] = {
        "job_name": spec.name,
        "nodes": spec.nodes,
        "ntasks_per_node": spec.devices_per_node,
        "cpus_per_task": slurm.cpus_per_task,
        "time": slurm.time_limit_minutes,
        "signal_delay_s": slurm.signal_grace_seconds,
        "stderr_to_stdout": True,  # one log per task: <job>_<task>_log.out
        # A crashed rank ends the whole step at once instead of leaving peers in a collective.
        "srun_args": ["--kill-on-bad-exit=1"],
        "additional_parameters": extra,
    }
    if spec.accelerator in ("gpu", "cuda"):
        params["gpus_per_node"] = spec.devices_per_node
    optional = {
        "partition": slurm.partition,
        "account": slurm.account,
        "qos": slurm.qos,
        "constraint": slurm.constraint,
        "mem": f"{slurm.mem_gb}GB" if slurm.mem_gb else None,
        "exclusive": True if slurm.exclusive else None,
        "setup": list(slurm.setup) or None,
    }
    params.update({key: value for key, value in optional.items() if value is not None})
    return params


def worker_command(spec: LaunchSpec, slurm: SlurmConfig) -> str:
    """The command line equivalent of what each task runs (through the pickled SlurmTask)."""
    python = slurm.python or shlex.quote(sys.executable)
    return f"{python} -m launcher.worker {shlex.quote(spec.spec_path)}"


def _executor(folder: Path, slurm: SlurmConfig, preview: bool) -> Any:
    import submitit

    cls = submitit.SlurmExecutor
    if preview:  # describe the job on a machine without SLURM: skip the `srun` check

        class _PreviewExecutor(submitit.SlurmExecutor):
            @classmethod
            def affinity(cls) -> int:
                return 2

        cls = _PreviewExecutor
    return cls(folder=folder, max_num_timeout=slurm.max_requeues, python=task_python(slurm))


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


class SlurmBackend(Backend):
    """Submit runs as SLURM batch jobs (through submitit) and ask SLURM about them."""

    name = "slurm"

    def submit(self, spec: LaunchSpec, dry_run: bool = False) -> Job | DryRun:
        slurm = slurm_config(spec)
        folder = job_folder(spec, slurm)
        if not dry_run:
            check_cluster(spec, slurm)
        executor = _executor(folder, slurm, preview=dry_run)
        try:
            executor.update_parameters(**sbatch_parameters(spec, slurm))
        except ValueError as exc:  # submitit lists the parameters it knows
            raise UserError(f"slurm settings rejected by submitit: {exc}") from exc
        task = SlurmTask(spec.spec_path, slurm.max_requeues, slurm.signal_grace_seconds)
        if dry_run:
            # submitit's own renderer: the exact text it writes to <job>_submission.sh.
            script = executor._make_submission_file_text(executor._submitit_command_str, "")
            return DryRun(self.name, f"{script.rstrip()}\n\n{_task_note(spec, slurm)}\n")
        spec.write()
        import submitit

        try:
            submitted = executor.submit(task)
        except submitit.core.utils.FailedJobError as exc:
            raise UserError(f"sbatch refused the job: {exc}") from exc
        return Job(
            handle=f"slurm://{submitted.job_id}",
            backend=self.name,
            run_dir=spec.run_dir,
            recipe=spec.recipe,
            name=spec.name,
            extra={"folder": str(folder), "world_size": spec.world_size},
        )

    def status(self, job: Job) -> JobState:
        info, error = _show_job(job.native_id)
        if info:
            state = SLURM_STATES.get(info.get("JobState", ""), JobState.UNKNOWN)
            if state == JobState.PENDING and int(info.get("Restarts", "0") or 0) > 0:
                return JobState.REQUEUED  # waiting to run again after a requeue
            return state
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
        return self._read_log(job, rank, follow)

    def _read_log(self, job: Job, rank: int, follow: bool) -> Iterator[str]:
        while True:
            path = _log_file(job, rank)
            if path.is_file():
                break
            if not follow:
                raise UserError(
                    f"no log for rank {rank} of {job.handle} yet ({self.status(job).value}); "
                    f"try again when it runs, or use --follow"
                )
            if self.status(job).is_terminal():
                return
            time.sleep(_FOLLOW_POLL_S)
        with open(path, errors="replace") as f:
            while True:
                line = f.readline()
                if line:
                    yield line
                    continue
                if not follow or self.status(job).is_terminal():
                    yield from f  # whatever landed since the last read
                    return
                time.sleep(_FOLLOW_POLL_S)

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
    result = subprocess.run(
        ["scontrol", "show", "partition", "-o"], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise UserError(f"cannot reach the SLURM controller: {result.stderr.strip()}")
    partitions = {}
    for line in result.stdout.splitlines():
        fields = dict(re.findall(r"(\S+?)=(\S*)", line))
        if "PartitionName" in fields:
            partitions[fields["PartitionName"]] = fields
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


def _task_note(spec: LaunchSpec, slurm: SlurmConfig) -> str:
    return (
        f"# Each of the {spec.world_size} tasks ({spec.nodes} nodes x {spec.devices_per_node}) "
        "runs the pickled backends.slurm_task.SlurmTask,\n# which calls "
        f"launcher.worker.main(spec_path), the same as:\n#   {worker_command(spec, slurm)}\n"
        f"# and requeues the job (at most {slurm.max_requeues} times) after a checkpoint on "
        "SIGUSR2/SIGTERM."
    )


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
    result = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60
    )
    first = result.stdout.splitlines()[0] if result.stdout.strip() else ""
    return dict(re.findall(r"(\S+?)=(\S*)", first)), result.stderr
