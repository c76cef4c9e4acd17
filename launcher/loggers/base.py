"""The `Logger` interface: what the trainer needs from an experiment tracker.

Only global rank 0 ever holds a real logger; the trainer calls these methods from the
training loop, so implementations must return quickly (queue work, send it elsewhere).

    class PrintLogger(Logger):
        name = "print"
        def log_metrics(self, metrics, step):
            print(step, metrics)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Logger:
    """Base class with no-op defaults; override what your tracker supports."""

    name: str = "logger"

    @property
    def run_id(self) -> str | None:
        """Stable id of the run, stored in checkpoints so a resumed job continues it."""
        return None

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        """Record parameters (flat dict, values are str/int/float/bool)."""

    def set_tags(self, tags: dict[str, str]) -> None:
        """Record tags (backend, git commit, requeue count...)."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar metrics at `step` (the trainer's global step)."""

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        """Upload a file (the recipe, the resolved config, a checkpoint)."""

    def flush(self) -> None:
        """Block until everything queued so far has been handed to the tracker."""

    def request_flush(self) -> Callable[[], None]:
        """Start handing everything logged so far to the tracker; returns a wait for it.

        The trainer calls it when it takes a checkpoint and waits just before the checkpoint
        file becomes visible, so writing the file and sending the metrics overlap. The default
        flushes at once.
        """
        self.flush()
        return already_done

    def finalize(self, status: str) -> None:
        """End the run with `status` in {"FINISHED", "FAILED", "KILLED"}; flushes first."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to continue this run (its id, the last step)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the run described by `state_dict` (called before any logging)."""


def already_done() -> None:
    """The wait of a flush that has already happened."""
