"""Ray backend: the run becomes a Ray Job whose driver runs Ray Train's `TorchTrainer`.

    launch recipe.py --backend ray --nodes 2 --gpus 8 --address http://head:8265
    launch recipe.py --backend ray --cluster local_ray --devices 2 --accelerator cpu

    backend = RayBackend()
    plan = backend.plan(spec)           # RayPlan: the job request; print(plan.render())
    job = backend.submit(plan)          # -> Job(handle="ray://<submission id>", ...)
    backend.status(job); backend.logs(job, rank=1, follow=True); backend.cancel(job)

Address (`--address`, else `ray.address` in the cluster config): `http://host:8265` (the job
API), `ray://host:10001` (Ray Client) or `auto` / `host:6379` (a GCS; Ray looks up its job
API). With none, a local Ray is started on 127.0.0.1 for the run, the run is followed in the
foreground, and Ray is stopped after it.

What travels: `launcher/` and `backends/` as `py_modules`; the job's `working_dir` is
`RUN_DIR/ray_job/`, holding the recipe file and a `launch.json` whose recipe path is relative
to it (helper modules beside the recipe: add them to `ray.runtime_env.py_modules`). The run
directory must be reachable by every node (`ray.storage_path` points at shared storage).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from backends.base import Backend, Job, JobState, Plan, follow_file, whole_lines
from backends.ray_cluster import (
    auth_headers,
    check_capacity,
    check_reachable,
    job_api_url,
    local_ray_head,
)
from backends.ray_config import RayConfig, max_failures, ray_config, scaling_settings
from backends.ray_driver import DEFAULT_WORKER
from launcher.errors import UserError
from launcher.spec import SPEC_FILENAME, LaunchSpec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STAGE_DIR = "ray_job"  # in the run dir: the job's working_dir
LOCAL_LOG = "ray_job.log"  # in the run dir: the log of a run on a local, temporary Ray

# Ray's JobStatus values onto ours (STOPPED is what `ray job stop` leaves).
RAY_STATES = {
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "STOPPED": JobState.CANCELLED,
    "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
}

JOB_ENV_VARS = {
    "RAY_CHDIR_TO_TRIAL_DIR": "0",  # workers stay in the working_dir, where the recipe is
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",  # else every worker line is logged twice
    "RAY_DEDUP_LOGS": "0",  # identical lines of different ranks must all reach the log
    "PYTHONUNBUFFERED": "1",
}

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient


def _verbose_env() -> dict[str, str]:
    # `launch --verbose` shows Ray's own lines in the job's log too (backends/ray_logs.py).
    return {"LAUNCHER_VERBOSE": "1"} if os.environ.get("LAUNCHER_VERBOSE") == "1" else {}


T = TypeVar("T")


@dataclass
class RayPlan(Plan):
    """One Ray Job submission: the `submit_job` request and what the driver asks Ray Train for.

    `render()` shows the request (entrypoint, runtime_env, metadata), the worker scaling and
    failure settings, and where the run dir is on the cluster, as JSON.
    """

    settings: RayConfig
    entrypoint: str
    submission_id: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str]
    stage_dir: Path  # the job's working_dir: filled with the recipe and launch.json on submit
    remote_run_dir: str  # the run dir as the cluster's nodes see it
    # What the driver will ask Ray Train for (it decides use_gpu=auto on the cluster).
    scaling_config: dict[str, Any]
    max_failures: int

    def request(self) -> dict[str, Any]:
        """The arguments of `JobSubmissionClient.submit_job`."""
        return {
            "entrypoint": self.entrypoint,
            "submission_id": self.submission_id,
            "runtime_env": self.runtime_env,
            "metadata": self.metadata,
        }

    def render(self) -> str:
        described = {
            "address": self.settings.address or "none: a local Ray on 127.0.0.1, for this run only",
            **self.request(),
            "scaling_config": self.scaling_config,
            "failure_config": {"max_failures": self.max_failures},
            "run_dir_on_cluster": self.remote_run_dir,
        }
        return (
            "# Ray job submission (dry run: nothing was submitted)\n"
            + json.dumps(described, indent=2)
            + "\n"
        )


class RayBackend(Backend[RayPlan]):
    """Submit runs as Ray Jobs; ask about them through the cluster's job API.

    `worker` names the function every Ray Train worker calls with the spec path (tests and
    debugging); it must be importable on the cluster.
    """

    name = "ray"

    def __init__(self, worker: str = DEFAULT_WORKER) -> None:
        self.worker = worker

    def plan(self, spec: LaunchSpec) -> RayPlan:
        settings = ray_config(spec)
        user_env = dict(settings.runtime_env)
        if "working_dir" in user_env:
            raise UserError(
                "ray.runtime_env.working_dir: launcher ships the recipe as the job's working "
                "dir; put extra code in ray.runtime_env.py_modules instead"
            )
        stage_dir = Path(spec.run_dir) / STAGE_DIR
        remote_run_dir = _remote_run_dir(spec, settings)
        submission_id = f"{re.sub(r'[^A-Za-z0-9_-]', '-', spec.name)}-{uuid.uuid4().hex[:6]}"
        runtime_env = {
            **user_env,
            "working_dir": str(stage_dir),
            "py_modules": [str(PROJECT_ROOT / "launcher"), str(PROJECT_ROOT / "backends")]
            + list(user_env.get("py_modules", [])),
            "excludes": ["__pycache__", "*.pyc"] + list(user_env.get("excludes", [])),
            "env_vars": {
                **JOB_ENV_VARS,
                "LAUNCHER_RAY_SUBMISSION_ID": submission_id,
                **_verbose_env(),
                **user_env.get("env_vars", {}),
            },
        }
        entrypoint = f"python -m backends.ray_driver {SPEC_FILENAME}"
        if self.worker != DEFAULT_WORKER:
            entrypoint += f" --worker {self.worker}"
        scaling: dict[str, Any] = scaling_settings(spec, cluster_has_gpus=spec.accelerator == "gpu")
        if spec.accelerator == "auto":
            scaling["use_gpu"] = "auto: true when the cluster has GPUs"
        return RayPlan(
            spec,
            settings=settings,
            entrypoint=entrypoint,
            submission_id=submission_id,
            runtime_env=runtime_env,
            metadata={"launcher_run": spec.name, "run_dir": remote_run_dir},
            stage_dir=stage_dir,
            remote_run_dir=remote_run_dir,
            scaling_config=scaling,
            max_failures=max_failures(spec),
        )

    def schedule(self, plan: RayPlan) -> Job:
        if not plan.settings.address:
            return self._run_on_local_ray(plan)
        url = job_api_url(plan.settings.address)
        check_capacity(url, plan.spec)
        return self._submit(plan, url)

    def status(self, job: Job) -> JobState:
        if job.extra.get("local_cluster"):  # that Ray is gone; submit recorded the end
            return JobState(job.extra.get("state", JobState.UNKNOWN.value))
        native = _call(lambda: _client(job).get_job_status(job.native_id), job)
        return RAY_STATES.get(getattr(native, "value", str(native)), JobState.UNKNOWN)

    def logs(self, job: Job, rank: int | None = None, follow: bool = False) -> Iterator[str]:
        """`rank=None`: the Ray job's log (driver, Ray Train, rank 0's console output).
        `rank=N`: `RUN_DIR/logs/rank<N>.log`, which must be reachable from here."""
        if rank is not None:
            return self._rank_log(job, rank, follow)
        if job.extra.get("local_cluster"):
            return follow_file(Path(job.run_dir, LOCAL_LOG), done=lambda: True)
        if follow:
            return _follow_lines(_client(job), job.native_id)
        text = _call(lambda: _client(job).get_job_logs(job.native_id), job)
        return iter(text.splitlines(keepends=True))

    def _rank_log(self, job: Job, rank: int, follow: bool) -> Iterator[str]:
        run_dir = Path(job.extra.get("remote_run_dir", job.run_dir))
        path = run_dir / "logs" / f"rank{rank}.log"
        if not run_dir.is_dir():
            raise UserError(
                f"--rank {rank}: the run dir {run_dir} of {job.handle} is on the "
                f"cluster's storage, not reachable from here; without --rank you get rank 0's "
                f"output from Ray"
            )

        def ended() -> bool:
            return not follow or self.status(job).is_terminal()

        yield from follow_file(path, ended, poll_s=1)
        if not path.exists():
            raise UserError(f"--rank {rank}: no log at {path} ({self.status(job).value})")

    def cancel(self, job: Job) -> None:
        if not job.extra.get("local_cluster"):
            _call(lambda: _client(job).stop_job(job.native_id), job)

    def _submit(self, plan: RayPlan, url: str) -> Job:
        from ray.job_submission import JobSubmissionClient

        _stage(plan)
        # Ray logs each package upload at INFO; the user only needs the handle we print.
        logging.getLogger("ray.dashboard").setLevel(logging.WARNING)
        logging.getLogger("ray._private.runtime_env").setLevel(logging.WARNING)
        client = JobSubmissionClient(url, headers=auth_headers())
        for attempt in range(30):  # a Ray that just started has no job agent for a few seconds
            try:
                submission_id = client.submit_job(**plan.request())
                break
            except RuntimeError as exc:
                if "No available agent" not in str(exc) or attempt == 29:
                    raise UserError(f"the Ray cluster at {url} refused the job: {exc}") from exc
                time.sleep(1)
        return self.new_job(
            plan.spec, submission_id, address=url, remote_run_dir=plan.remote_run_dir
        )

    def _run_on_local_ray(self, plan: RayPlan) -> Job:
        """Start a Ray head on 127.0.0.1, run the job in the foreground, stop Ray."""
        spec = plan.spec
        cpus = max(1, math.ceil(spec.world_size * plan.settings.num_cpus_per_worker))
        log_path = Path(spec.run_dir) / LOCAL_LOG
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with local_ray_head(cpus, Path(spec.run_dir) / "ray_head.log") as url:
            check_capacity(url, spec, check_nodes=False)
            job = self._submit(plan, url)
            with open(log_path, "w") as log:
                for line in _follow_lines(_client(job), job.native_id):
                    log.write(line)
                    sys.stdout.write(line)
            info = _client(job).get_job_info(job.native_id)
        state = RAY_STATES.get(getattr(info.status, "value", ""), JobState.UNKNOWN)
        exit_code = getattr(info, "driver_exit_code", None)
        if exit_code is None:
            exit_code = 0 if state == JobState.SUCCEEDED else 1
        job.extra.update(local_cluster=True, state=state.value, exit_code=exit_code)
        return job


def _stage(plan: RayPlan) -> None:
    """Fill the job's working dir: the recipe and a launch.json that points at it."""
    spec = plan.spec
    plan.stage_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(spec.recipe, plan.stage_dir / Path(spec.recipe).name)
    shipped = dataclasses.replace(spec, recipe=Path(spec.recipe).name, run_dir=plan.remote_run_dir)
    shipped.write(str(plan.stage_dir / SPEC_FILENAME))


def _remote_run_dir(spec: LaunchSpec, settings: RayConfig) -> str:
    if settings.storage_path:
        return str(Path(settings.storage_path) / spec.experiment / spec.name)
    return spec.run_dir


def _client(job: Job) -> JobSubmissionClient:
    from ray.job_submission import JobSubmissionClient

    address = job.extra.get("address")
    if not address:
        raise UserError(f"{job.handle}: no Ray job API address recorded for this job")
    check_reachable(address, urlsplit(address).hostname or "", urlsplit(address).port or 80)
    return JobSubmissionClient(address, headers=auth_headers())


def _call(fn: Callable[[], T], job: Job) -> T:
    try:
        return fn()
    except RuntimeError as exc:  # the job API answers "job not found" this way
        raise UserError(f"{job.handle} on {job.extra.get('address')}: {exc}") from exc


def _follow_lines(client: JobSubmissionClient, submission_id: str) -> Iterator[str]:
    """The job's log as whole lines, as it is written, until the job ends."""
    return whole_lines(_log_chunks(client, submission_id))


def _log_chunks(client: JobSubmissionClient, submission_id: str) -> Iterator[str]:
    """`tail_job_logs`, an async stream of chunks, read from synchronous code."""
    loop = asyncio.new_event_loop()
    stream = client.tail_job_logs(submission_id)
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
    finally:
        # An async generator, though Ray annotates it as a plain AsyncIterator.
        loop.run_until_complete(stream.aclose())  # type: ignore[attr-defined]
        loop.close()
