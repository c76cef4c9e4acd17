"""`VersionedLogger`: a logger whose files go to `save_dir/name/version_N/`, as Lightning's.

    class MyLogger(VersionedLogger):
        kind = "mine"
    MyLogger("logs").log_dir          # "logs/lightning_logs/version_0" (the next free N)
    MyLogger("logs", version="a").log_dir   # "logs/lightning_logs/a"

The shared part of `CSVLogger` and `TensorBoardLogger`: naming, the version picked from the
`version_*` folders already there (on first use, so a resume can set it first), Lightning's
metric prefix, and the version in the checkpoint so a requeued job writes into the same folder.
Imported by csv.py and tensorboard.py only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from launcher.loggers.base import Logger


class VersionedLogger(Logger):
    """Lightning's `save_dir`/`name`/`version` layout; subclasses write the files."""

    kind = "versioned"  # the checkpoint key's first part (`csv:lightning_logs`)
    LOGGER_JOIN_CHAR = "-"  # Lightning's: `prefix-key`

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
    ) -> None:
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._prefix = prefix
        self._started = False  # set by a subclass once its files are open

    @property
    def name(self) -> str:
        """The experiment's folder under `save_dir` ("" puts versions in `save_dir` itself)."""
        return self._name

    @property
    def version(self) -> int | str:
        """The version given, else the next after the `version_N` folders present (on first use)."""
        if self._version is None:
            self._version = next_version(self.root_dir)
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return os.path.join(self._save_dir, self._name)

    @property
    def log_dir(self) -> str:
        version = self.version
        return os.path.join(
            self.root_dir, version if isinstance(version, str) else f"version_{version}"
        )

    @property
    def state_key(self) -> str:
        # The class and the experiment folder: a CSV and a TensorBoard logger may share a name.
        return f"{self.kind}:{os.path.join(self._save_dir, self._name)}"

    def state_dict(self) -> dict[str, Any]:
        return {"version": self.version}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._started:
            raise RuntimeError(
                f"{type(self).__name__}.load_state_dict must be called before any logging"
            )
        if state_dict.get("version") is not None:
            self._version = state_dict["version"]  # continue the checkpointed run's folder


def next_version(root_dir: str) -> int:
    """One more than the highest `version_N` folder in `root_dir`; 0 when there is none."""
    root = Path(root_dir)
    if not root.is_dir():
        return 0
    found = [
        int(p.name[len("version_") :])
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith("version_") and p.name[len("version_") :].isdigit()
    ]
    return max(found) + 1 if found else 0
