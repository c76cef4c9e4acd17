"""The `Logger` interface: what the trainer needs from an experiment tracker.

Only global rank 0 ever holds a real logger; the trainer calls these methods from the
training loop, so implementations must return quickly (queue work, send it elsewhere).
The names and meanings follow Lightning 2.x's `Logger` (`name`, `version`, `save_dir`,
`log_dir`, `experiment`, `log_graph`, `save`, `after_save_checkpoint`, `group_separator`),
plus ours for exact resume and run bookkeeping (`run_id`, `set_tags`, `log_artifact`,
`flush`, `request_flush`, `state_key`, `state_dict`/`load_state_dict`).

    class PrintLogger(Logger):
        name = "print"
        def log_metrics(self, metrics, step=None):
            print(step, metrics)
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# Lightning's finalize statuses ("success", ...) and MLflow's ("FINISHED", ...), to MLflow's.
_STATUSES = {
    "success": "FINISHED",
    "finished": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
}


class Logger:
    """Base class with no-op defaults; override what your tracker supports."""

    name: Any = "logger"  # a str; Lightning's MLFlowLogger makes it a property (experiment id)
    version: Any = None  # int | str | None; a property where a logger has versions
    group_separator = "/"  # what joins a metric's group and name (`train/loss`), as Lightning

    @property
    def save_dir(self) -> str | None:
        """The folder this logger writes under, if it writes locally."""
        return None

    @property
    def root_dir(self) -> str | None:
        """The folder that holds this logger's versions (`save_dir/name`), if it has one."""
        return None

    @property
    def log_dir(self) -> str | None:
        """The folder of this run's files (`save_dir/name/version_N`), if it has one."""
        return None

    @property
    def experiment(self) -> Any:
        """The tracker's own object (a writer, a client), for what this interface lacks."""
        return None

    @property
    def run_id(self) -> str | None:
        """Stable id of the run, stored in checkpoints so a resumed job continues it."""
        return None

    @property
    def state_key(self) -> str:
        """The key of this logger's state in a checkpoint; distinct for two loggers of a run."""
        return str(self.name)

    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        """Record parameters (a dict, nested or flat, or an `argparse.Namespace`)."""

    def set_tags(self, tags: dict[str, str]) -> None:
        """Record tags (backend, git commit, requeue count...)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record scalar metrics at `step` (the trainer's global step)."""

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Record the model's graph, where the tracker can show one (TensorBoard)."""

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        """Upload a file (the recipe, the resolved config, a checkpoint)."""

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Called after `ModelCheckpoint` saved a file (loggers that upload models use it)."""

    @property
    def reads_checkpoint_files(self) -> bool:
        """Whether `after_save_checkpoint` may read the file just saved (ModelCheckpoint
        then waits for its background write first). A subclass that overrides the hook is
        assumed to; Lightning's `log_model=False` (`log_model` or `_log_model`) says not."""
        if type(self).after_save_checkpoint is Logger.after_save_checkpoint:
            return False
        log_model = getattr(self, "log_model", getattr(self, "_log_model", True))
        return bool(log_model)

    def save(self) -> None:
        """Write what is buffered to its files (the trainer calls it at epoch ends)."""

    def flush(self) -> None:
        """Block until everything queued so far has been handed to the tracker."""
        self.save()

    def request_flush(self) -> Callable[[], None]:
        """Start handing everything logged so far to the tracker; returns a wait for it.

        The trainer calls it when it takes a checkpoint and waits just before the checkpoint
        file becomes visible, so writing the file and sending the metrics overlap. The default
        flushes at once.
        """
        self.flush()
        return already_done

    def finalize(self, status: str) -> None:
        """End the run: "FINISHED"/"FAILED"/"KILLED", or Lightning's "success"/"failed"/"finished".

        Flushes first. See `run_status` for the one spelling.
        """

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to continue this run (its id, the last step)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the run described by `state_dict` (called before any logging)."""


def already_done() -> None:
    """The wait of a flush that has already happened."""


def check_state_keys(owner: str, state_dict: Mapping[str, Any], valid: set[str]) -> None:
    """Raise ValueError naming the valid keys when a checkpoint's logger state has others."""
    unknown = set(state_dict) - valid
    if unknown:
        raise ValueError(f"unknown {owner} state keys {sorted(unknown)}; valid: {sorted(valid)}")


def run_status(status: str) -> str:
    """A finalize status in MLflow's spelling: `run_status("success") == "FINISHED"`."""
    return _STATUSES.get(status.lower(), status.upper())


def params_dict(params: Mapping[str, Any] | Namespace | None) -> dict[str, Any]:
    """Hyperparameters as a plain dict: Lightning's loggers also take a `Namespace` or None."""
    if params is None:
        return {}
    if isinstance(params, Namespace):
        return dict(vars(params))
    return dict(params)


def add_prefix(metrics: Mapping[str, Any], prefix: str, join: str = "-") -> Mapping[str, Any]:
    """Lightning's metric prefix: `add_prefix({"loss": 1}, "train") == {"train-loss": 1}`."""
    if not prefix:
        return metrics
    return {f"{prefix}{join}{k}": v for k, v in metrics.items()}


def scalar(value: Any) -> Any:
    """A tensor's Python number (`.item()`), anything else unchanged; never imports torch."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def new_checkpoints(callback: Any, logged: dict[str, float]) -> list[tuple[float, str, Any]]:
    """(mtime, path, score) of a ModelCheckpoint's last, best and top-k files not yet `logged`.

    As Lightning's loggers pick what to upload: a file counts again once it is rewritten.
    """
    found: dict[str, Any] = {}
    if getattr(callback, "last_model_path", None):
        found[callback.last_model_path] = getattr(callback, "current_score", None)
    if getattr(callback, "best_model_path", None):
        found[callback.best_model_path] = getattr(callback, "best_model_score", None)
    found.update(getattr(callback, "best_k_models", None) or {})
    out = []
    for path, score in found.items():
        if Path(path).is_file():
            mtime = Path(path).stat().st_mtime
            if path not in logged or logged[path] < mtime:
                out.append((mtime, path, score))
    return sorted(out)
