"""A real `mlflow server` for the tests, on 127.0.0.1 and a free port, with a sqlite store.

    def test_something(mlflow_server):
        logger = MLflowLogger(tracking_uri=mlflow_server.uri, ...)
        mlflow_server.stop()    # outage: same port and store when it comes back
        mlflow_server.start()

One server per test session (start-up takes seconds); a test that stops it starts it again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.common.net import free_port
from launcher.tracking.server import start_server, stop_server, wait_for_server


class MlflowServer:
    """`mlflow server` with a sqlite store under `root`; stop()/start() keep port and store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.store_uri = f"sqlite:///{root / 'mlflow.db'}"
        self.log_path = root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = start_server(
            self.store_uri, self.port, str(self.root / "artifacts"), log_path=str(self.log_path)
        )
        try:
            wait_for_server(self.uri, self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; log: {self.log_path.read_text()[-2000:]}") from exc

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A running MLflow tracking server shared by the session; killed by PID at the end."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def live_mlflow_server(mlflow_server: MlflowServer) -> MlflowServer:
    """The session server, restarted if an earlier test left it stopped."""
    mlflow_server.start()
    return mlflow_server
