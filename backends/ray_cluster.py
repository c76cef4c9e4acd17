"""Reaching a Ray cluster for `backends/ray.py`: its job API, its capacity, a temporary head.

    url = job_api_url("ray://head:10001")      # -> "http://10.0.0.1:8265", or a UserError in ~20 s
    check_capacity(url, spec)                 # UserError when the cluster can't hold the run
    with local_ray_head(num_cpus=2) as url:   # a Ray on 127.0.0.1 for one run, stopped after
        ...

Every wait here is bounded: an unreachable or silent address is a `UserError` within
`CONNECT_TIMEOUT_S`, and a run larger than the cluster is refused before it is submitted
(Ray would otherwise leave it pending forever).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar
from urllib.parse import urlsplit

from backends.ray_config import scaling_settings
from launcher.common.net import free_port
from launcher.errors import UserError
from launcher.spec import LaunchSpec

CONNECT_TIMEOUT_S = 20
T = TypeVar("T")


def job_api_url(address: str) -> str:
    """The HTTP job API of the cluster at `address` (`http://`, `ray://`, `auto`, `host:port`).

    Example: `job_api_url("127.0.0.1:6390")` -> `"http://127.0.0.1:8265"`.
    """
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    if parts.hostname and parts.port:
        check_reachable(address, parts.hostname, parts.port)
    if parts.scheme in ("http", "https"):
        url = address.rstrip("/")
    else:  # a Ray Client or GCS address: Ray asks the cluster where its job API is
        from ray.dashboard.utils import get_address_for_submission_client

        url = _with_timeout(lambda: get_address_for_submission_client(address), address)
    _check_job_api(url, address)
    return url


def alive_nodes(url: str) -> list[dict]:
    """The alive nodes of the cluster behind the job API at `url` (Ray's state API, over HTTP)."""
    import requests

    params: dict[str, str | int] = {"limit": 10000, "detail": 1}
    params.update(filter_keys="state", filter_predicates="=", filter_values="ALIVE")
    try:
        reply = requests.get(
            f"{url}/api/v0/nodes",
            params=params,
            headers=auth_headers(),
            timeout=CONNECT_TIMEOUT_S,
        )
        reply.raise_for_status()
        nodes = reply.json()["data"]["result"]["result"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise UserError(f"cannot list the nodes of the Ray cluster at {url}: {exc}") from exc
    return [n for n in nodes if n.get("state") == "ALIVE"]


def check_capacity(url: str, spec: LaunchSpec, check_nodes: bool = True) -> None:
    """Refuse a run the cluster's alive nodes cannot hold now (GPUs, CPUs, custom resources)."""
    totals = [node["resources_total"] for node in alive_nodes(url)]
    has_gpus = any(t.get("GPU", 0) > 0 for t in totals)
    need = scaling_settings(spec, cluster_has_gpus=has_gpus)["resources_per_worker"]
    fits = sum(int(min(t.get(k, 0.0) / v for k, v in need.items() if v > 0)) for t in totals)
    have = "; ".join(", ".join(f"{k} {t.get(k, 0):g}" for k in sorted(need)) for t in totals)
    asked = f"--nodes {spec.nodes} x {spec.devices_per_node} = {spec.world_size} workers"
    if fits < spec.world_size:
        raise UserError(
            f"the Ray cluster at {url} cannot hold {asked} of {need} each: its {len(totals)} "
            f"alive node(s) have [{have or 'nothing'}], room for {fits}. Ask for fewer workers "
            f"or lower ray.num_cpus_per_worker / ray.resources_per_worker."
        )
    if check_nodes and spec.nodes > len(totals):
        raise UserError(f"--nodes {spec.nodes}: the Ray cluster at {url} has {len(totals)} alive")


@contextlib.contextmanager
def local_ray_head(num_cpus: int, log_path: str | os.PathLike[str]) -> Iterator[str]:
    """A one-node Ray on 127.0.0.1 with free ports; yields its job API URL; stops it after.

    Started as `ray start --head --block` in a new session, so stopping it (by session id)
    ends exactly its processes, and never another Ray on this host.
    """
    gcs, dashboard, agent, client = (free_port() for _ in range(4))
    temp_dir = tempfile.mkdtemp(prefix="lray", dir="/tmp")  # short: Ray's unix socket paths
    command = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address=127.0.0.1", f"--port={gcs}", f"--num-cpus={num_cpus}",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
        f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
        f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    # Token auth like any new Ray; the token lives only in our environment and the head's.
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    with open(log_path, "ab") as log:
        head = subprocess.Popen(
            command, env={**os.environ, **token}, stdout=log, stderr=log, start_new_session=True
        )
    saved = {k: os.environ.get(k) for k in token}
    os.environ.update(token)  # our job API calls (ours and Ray's client) send it
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 60
        while not (_answers(url) and alive_nodes(url)):
            if head.poll() is not None or time.monotonic() > deadline:
                raise UserError(f"could not start a local Ray (see {log_path})")
            time.sleep(0.5)
        yield url
    finally:
        _stop_session(head)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_reachable(address: str, host: str, port: int) -> None:
    """A TCP connection to `host:port` opens within half the time limit, else a UserError."""
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S / 2).close()
    except OSError as exc:
        raise UserError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}). Is it running "
            f"(`ray status`)? Pass --address http://HEAD:8265 (the job API) or set ray.address."
        ) from exc


def auth_headers() -> dict[str, str]:
    """The bearer token for clusters with Ray's token auth, when the user configured one.

    Ray's own variables, in Ray's order: `RAY_AUTH_TOKEN`, the file `RAY_AUTH_TOKEN_PATH`,
    or `~/.ray/auth_token` when `RAY_AUTH_MODE=token`. Example: `requests.get(url, headers=
    auth_headers())`.
    """
    token = os.environ.get("RAY_AUTH_TOKEN")
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not token and not path and os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        path = os.path.expanduser("~/.ray/auth_token")
    if not token and path and os.path.isfile(path):
        with open(path) as f:
            token = f.read().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _check_job_api(url: str, address: str) -> None:
    """Something answers at `url`; make sure it is a Ray job API, within the time limit."""
    import requests

    where = url if url == address else f"{url} (from {address})"
    try:
        reply = requests.get(
            f"{url}/api/version", headers=auth_headers(), timeout=CONNECT_TIMEOUT_S / 2
        )
        version = reply.json().get("ray_version") if reply.ok else None
    except (requests.RequestException, ValueError) as exc:
        raise UserError(f"the Ray job API at {where} did not answer: {exc}") from exc
    if reply.status_code in (401, 403):
        raise UserError(
            f"the Ray cluster at {where} uses token authentication and refused "
            f"{'our token' if auth_headers() else 'us: no token is set'} (HTTP "
            f"{reply.status_code}). Set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or "
            f"RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token) to the cluster's token."
        )
    if not version:
        raise UserError(
            f"{where} is not a Ray job API (GET /api/version: HTTP {reply.status_code}). "
            f"Pass the dashboard address, e.g. http://HEAD:8265."
        )


def _answers(url: str) -> bool:
    try:
        _check_job_api(url, url)
        return True
    except UserError:
        return False


def _with_timeout(fn: Callable[[], T], address: str) -> T:
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(fn).result(timeout=CONNECT_TIMEOUT_S)
    except FutureTimeout:
        raise UserError(
            f"the Ray cluster at {address} did not answer within {CONNECT_TIMEOUT_S} s"
        ) from None
    except (ConnectionError, OSError, ValueError) as exc:
        raise UserError(f"cannot use the Ray cluster at {address}: {exc}") from exc
    finally:
        pool.shutdown(wait=False)


def _stop_session(leader: subprocess.Popen) -> None:
    """SIGTERM every process of `leader`'s session (Ray's daemons and workers), then SIGKILL."""
    import psutil

    def members() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["status"]):
            with contextlib.suppress(OSError, psutil.Error):
                if os.getsid(proc.pid) == leader.pid and proc.info["status"] != "zombie":
                    found.append(proc)
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in members():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            leader.wait(timeout=10)
        psutil.wait_procs(members(), timeout=10)
        if not members():
            break
