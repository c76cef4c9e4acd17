"""What SLURM says about jobs and partitions: `scontrol show -o` parsed, its states mapped.

    records, error = show("partition")         # [{"PartitionName": "low", ...}, ...], ""
    info = show_job("4242")                    # {"JobState": "RUNNING", ...}, {} if unknown
    job_state(info)                            # JobState.RUNNING

Used by the SLURM backend on the submitting side (`backends/slurm.py`) and inside the job
(`backends/slurm_task.py`), so it imports nothing heavy. SLURM's own state words stay here:
everything users see is a `JobState`.
"""

from __future__ import annotations

import re
import subprocess

from backends.base import JobState

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

_FIELD = re.compile(r"(\S+?)=(\S*)")


def parse_fields(line: str) -> dict[str, str]:
    """One `scontrol show -o` record as a dict: `"JobId=42 JobState=RUNNING"` -> {...}."""
    return dict(_FIELD.findall(line))


def show(
    entity: str, name: str | None = None, timeout_s: float = 60
) -> tuple[list[dict[str, str]], str]:
    """`scontrol show ENTITY -o [NAME]`: (one dict per record, the error text or "").

    Raises `OSError` when scontrol cannot run and `subprocess.TimeoutExpired` when the
    controller does not answer within `timeout_s`.
    """
    command = ["scontrol", "show", entity, "-o", *([name] if name else [])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    records = [parse_fields(line) for line in result.stdout.splitlines() if line.strip()]
    error = (result.stderr.strip() or f"exit code {result.returncode}") if result.returncode else ""
    return records, error


def show_job(job_id: str, timeout_s: float = 30) -> dict[str, str]:
    """`scontrol show job -o ID`'s fields; {} when SLURM does not know it or cannot answer."""
    try:
        records, _ = show("job", job_id, timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return records[0] if records else {}


def job_state(info: dict[str, str]) -> JobState:
    """Our state for a `show job` record: a pending job that ran before is REQUEUED."""
    state = SLURM_STATES.get(info.get("JobState", ""), JobState.UNKNOWN)
    if state == JobState.PENDING and int(info.get("Restarts", "0") or 0) > 0:
        return JobState.REQUEUED  # waiting to run again after a requeue
    return state
