"""`mlflow server` processes on 127.0.0.1: start, wait until healthy, stop (by PID).

    from launcher.common.net import free_port
    proc = start_server("sqlite:////tmp/x/mlflow.db", port := free_port(), "/tmp/x/artifacts")
    wait_for_server(f"http://127.0.0.1:{port}", proc)
    stop_server(proc)

Used by `launch ui` (`launcher.tracking.reader.serve_ui`), the test fixtures and the benchmark.
Imports no mlflow: the server is a child process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import IO


def start_server(
    backend_store_uri: str, port: int, artifacts_dir: str | None = None, log_path: str | None = None
) -> subprocess.Popen[bytes]:
    """Start `mlflow server` on 127.0.0.1:`port` in its own process group; returns the Popen."""

    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_store_uri,
    ]
    if artifacts_dir:
        cmd += ["--artifacts-destination", artifacts_dir]
    log: IO[bytes] | int = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    # No job-runner process (GenAI jobs): faster start, and no temp dirs left in /dev/shm.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    # Own session: stop_server can end uvicorn and its helper children with one killpg.
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def wait_for_server(
    url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 90.0
) -> None:
    """Poll `url/health` until it answers 200; raise if `proc` exits or `timeout` passes."""
    import urllib.request  # ~40 ms; only `launch ui`, the fixtures and the benchmark wait

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"mlflow server at {url} not healthy after {timeout:.0f}s")


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a server from `start_server` (its whole process group), by its PID."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue
