"""The local backend: train on this machine, in the foreground.

One process runs the worker in-process. Several processes (`--devices N`, `--gpus N`,
`--nodes M`) are started by torch's elastic launcher (`torch.distributed.run`), one agent per
"node", so the multi-node path (node rank, rendezvous) runs for real on one host. With
`--max-restarts N` the agents restart a failed group, which resumes from its last checkpoint.

    plan = LocalBackend().plan(spec)       # the worker commands; print(plan.render())
    job = LocalBackend().submit(plan)      # blocks until the run ends
    job.extra["exit_code"]
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from backends.base import Backend, Job, JobState, Plan, follow_file
from launcher.common.heartbeat import heartbeat_age
from launcher.common.net import free_port
from launcher.common.process import process_alive
from launcher.errors import (
    INTERRUPTED_EXIT_CODE,
    REQUEUE_EXIT_CODE,
    TERMINATED_EXIT_CODE,
    UserError,
)
from launcher.spec import LaunchSpec

# torchrun's failure report: "rank      : 1 (local_rank: 1)" ... "exitcode  : -9 (pid: 42)"
_RANK_FAILURE = re.compile(r"\brank\s+:\s+(\d+) \(local_rank.*?exitcode\s+:\s+(-?\d+)", re.S)


@dataclass
class LocalPlan(Plan):
    """The processes a local run starts: one in-process worker, or one torchrun agent a node.

    `render()` is one shell line a process: its extra environment, then its command.
    """

    commands: list[list[str]]
    env: dict[str, str]  # added to this process's environment for the agents
    in_process: bool  # a single worker runs here, in this process (`launcher.worker.main`)

    def render(self) -> str:
        prefix = "".join(f"{key}={shlex.quote(value)} " for key, value in self.env.items())
        return "".join(f"{prefix}{shlex.join(command)}\n" for command in self.commands)


class LocalBackend(Backend[LocalPlan]):
    """Runs the worker on this host and waits for it."""

    name = "local"
    tracks_processes = False  # a job recorded RUNNING may have been SIGKILLed: the heartbeat says

    def plan(self, spec: LaunchSpec) -> LocalPlan:
        worker = ["-m", "launcher.worker", spec.spec_path]
        if spec.world_size == 1:
            return LocalPlan(spec, [[sys.executable, *worker]], env={}, in_process=True)
        port = free_port()  # the rendezvous of every node's agent, on this host
        agent = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nnodes={spec.nodes}",
            f"--nproc-per-node={spec.devices_per_node}",
            # c10d rendezvous namespaces every restart round in the store, so a
            # restarted group never reads the dead group's addresses (static does not).
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}",
            f"--rdzv-id={Path(spec.run_dir).name}",
            f"--max-restarts={spec.max_restarts}",
            *worker,
        ]  # fmt: skip
        commands = [list(agent) for _node in range(spec.nodes)]
        env = {"PYTHONUNBUFFERED": "1"}
        if "OMP_NUM_THREADS" not in os.environ:
            # torchrun's default for several processes a node, for every agent here: they all
            # share this host's cores (with --nodes N, torchrun alone would leave each at all).
            env["OMP_NUM_THREADS"] = "1"
        return LocalPlan(spec, commands, env=env, in_process=False)

    def schedule(self, plan: LocalPlan) -> Job:
        spec = plan.spec
        if plan.in_process:
            from launcher.worker import main

            code = main(spec.spec_path, sigterm_stops=True)  # only a person sends it here
        else:
            code = self._run_agents(plan)
        stopped = code in (INTERRUPTED_EXIT_CODE, TERMINATED_EXIT_CODE)  # the run is KILLED
        state = (
            JobState.SUCCEEDED if code == 0 else JobState.CANCELLED if stopped else JobState.FAILED
        )
        return self.new_job(
            spec, Path(spec.run_dir).name, exit_code=code, state=state.value, pid=os.getpid()
        )

    def _run_agents(self, plan: LocalPlan) -> int:
        log_dir = Path(plan.spec.run_dir) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **plan.env}
        procs = [
            subprocess.Popen(
                cmd, env=env, stderr=subprocess.PIPE, text=True, bufsize=1, start_new_session=True
            )  # fmt: skip
            for cmd in plan.commands
        ]
        stderr_tails: list[list[str]] = [[] for _ in procs]
        stop = _StopForwarder(procs)
        pumps = [
            threading.Thread(target=_pump, args=(p, tail, stop.quiet), daemon=True)
            for p, tail in zip(procs, stderr_tails, strict=True)
        ]
        for t in pumps:
            t.start()
        try:
            codes = [p.wait() for p in procs]
        finally:
            stop.restore()
        for t in pumps:
            t.join(timeout=5)
        if stop.signum is not None:  # the workers checkpointed and said so, in one line
            return INTERRUPTED_EXIT_CODE if stop.signum == signal.SIGINT else TERMINATED_EXIT_CODE
        failed = [c for c in codes if c != 0]
        if not failed:
            return 0
        report = "".join(line for tail in stderr_tails for line in tail)
        rank_codes = {int(code) for _rank, code in _RANK_FAILURE.findall(report)}
        # The agent SIGTERMs the ranks still running once one exits; when the first to exit
        # did so after the group's agreed signal checkpoint, the whole job asks for a requeue.
        if REQUEUE_EXIT_CODE in rank_codes and rank_codes <= {REQUEUE_EXIT_CODE, -signal.SIGTERM}:
            return REQUEUE_EXIT_CODE
        root = report.rfind("Root Cause")
        cause = _RANK_FAILURE.search(report, root if root >= 0 else 0)
        if cause:
            print(f"error: rank {cause.group(1)} failed (exit code {cause.group(2)}); the job "
                  f"was stopped. Per-rank logs: {log_dir}", file=sys.stderr)  # fmt: skip
        return failed[0]

    def status(self, job: Job) -> JobState:
        return JobState(job.extra.get("state", JobState.UNKNOWN.value))

    def logs(self, job: Job, rank: int | None = None, follow: bool = False) -> Iterator[str]:
        """A rank's log file as it is now; with `follow`, until the run ends (the `launch`
        process running it in the foreground records its end, or is gone)."""
        rank = rank or 0
        spec_path = Path(job.run_dir) / "launch.json"
        world = LaunchSpec.read(str(spec_path)).world_size if spec_path.is_file() else None
        if world is not None and not 0 <= rank < world:
            raise UserError(f"--rank {rank}: no such rank in {job.handle}, which has ranks "
                            f"0-{world - 1}")  # fmt: skip
        path = Path(job.run_dir) / "logs" / f"rank{rank}.log"
        return follow_file(path, lambda: not follow or not _running(job), poll_s=0.25)

    def cancel(self, job: Job) -> None:
        """Stop a local run from another terminal: SIGTERM to its `launch` process, which
        checkpoints and ends the run KILLED, as Ctrl-C there would."""
        pid = int(job.extra.get("pid") or 0)
        if not pid or heartbeat_age(job.run_dir) is None:  # no process claims to run it
            raise UserError(f"{job.handle} has no live process on this host; nothing to cancel")
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError as exc:
            raise UserError(f"{job.handle}: its process {pid} is gone; nothing to cancel") from exc


def _running(job: Job) -> bool:
    """Whether the foreground `launch` process of a local job still runs it."""
    from backends.registry import JobRegistry

    pid = job.extra.get("pid")
    if not isinstance(pid, int) or not process_alive(pid):
        return False
    try:
        state = JobRegistry().get(job.handle).extra.get("state")
    except UserError:  # the record was removed
        return False
    return state == JobState.RUNNING.value


class _StopForwarder:
    """Ctrl-C, a closed terminal or `kill` of `launch`: the agents pass the stop to every
    worker, which checkpoints and ends the run KILLED; torchrun's own report is not shown."""

    def __init__(self, agents: list[subprocess.Popen[str]]) -> None:
        self.agents = agents
        self.signum: int | None = None
        self.quiet = threading.Event()  # set: agents' stderr is no longer echoed
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._previous[sig] = signal.signal(sig, self._forward)

    def _forward(self, signum: int, _frame: object) -> None:
        self.signum = self.signum or signum
        self.quiet.set()
        # torchrun passes it on to every worker; a worker's SIGTERM means "requeue me".
        forward = signal.SIGINT if signum == signal.SIGTERM else signum
        for agent in self.agents:
            if agent.poll() is None:
                agent.send_signal(forward)  # a second Ctrl-C interrupts the workers at once

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _pump(proc: subprocess.Popen[str], tail: list[str], quiet: threading.Event) -> None:
    """Forward an agent's stderr, keeping the last lines to explain a failure."""
    assert proc.stderr is not None
    for line in proc.stderr:
        tail.append(line)
        del tail[:-200]
        if not quiet.is_set():
            try:
                sys.stderr.write(line)
            except OSError:  # the terminal is gone (SIGHUP)
                quiet.set()
