"""`WandbLogger`: Lightning's Weights & Biases logger (needs `pip install wandb`).

    logger = WandbLogger(project="mnist", name="lr-0.01", save_dir="outputs")
    logger.log_hyperparams({"lr": 0.01})               # run.config
    logger.log_metrics({"train_loss": 0.7}, step=10)   # with trainer/global_step as x axis
    WandbLogger(offline=True)                          # or WANDB_MODE=offline: files only

Importing this module without wandb raises an ImportError naming the install command.
`log_model=True` uploads ModelCheckpoint's files when the run ends, `"all"` after each save,
as `model-<run id>` artifacts with Lightning's `latest`/`best` aliases. Resume: the run id is
in the checkpoint, and a requeued job continues that run (`resume="allow"`).
"""

from __future__ import annotations

import os
from argparse import Namespace
from collections.abc import Mapping
from typing import Any, Literal

try:
    import wandb
except ImportError as exc:  # the logger is optional: say how to get it
    raise ImportError("WandbLogger needs the wandb package: pip install wandb") from exc

from launcher.loggers.base import (
    Logger,
    add_prefix,
    check_state_keys,
    new_checkpoints,
    params_dict,
    run_status,
)

_STATE_KEYS = {"id"}


class WandbLogger(Logger):
    """Lightning's `WandbLogger` (see module doc); `experiment` is the `wandb` run."""

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | os.PathLike[str] = ".",
        version: str | None = None,
        offline: bool = False,
        dir: str | os.PathLike[str] | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: bool | Literal["all"] = False,
        experiment: Any = None,
        prefix: str = "",
        checkpoint_name: str | None = None,
        add_file_policy: Literal["mutable", "immutable"] = "mutable",
        **kwargs: Any,
    ) -> None:
        """Lightning's arguments; `kwargs` go to `wandb.init` (`entity`, `tags`, `group`...)."""
        if offline and log_model:
            raise ValueError(
                f"WandbLogger(offline=True, log_model={log_model!r}): checkpoints cannot be "
                "uploaded offline; set offline=False or log_model=False"
            )
        self._offline = offline
        self._log_model = log_model
        self._prefix = prefix
        self._experiment = experiment
        self._checkpoint_name = checkpoint_name
        self._add_file_policy = add_file_policy
        self._checkpoint_callbacks: dict[int, Any] = {}
        self._logged_model_time: dict[str, float] = {}
        folder = os.fspath(save_dir) if save_dir is not None else dir and os.fspath(dir)
        self._init: dict[str, Any] = {
            "name": name,
            "project": project or os.environ.get("WANDB_PROJECT", "lightning_logs"),
            "dir": folder,
            "id": version or id,
            "resume": "allow",
            "anonymous": "allow" if anonymous else None,
            **kwargs,
        }

    @property
    def name(self) -> str | None:
        """The project (not the run's name: that is `experiment.name`), as Lightning's."""
        return self._init["project"]

    @property
    def version(self) -> str | None:
        """The run id, once the run exists; else the id given."""
        return self._experiment.id if self._experiment is not None else self._init["id"]

    @property
    def save_dir(self) -> str | None:
        return self._init["dir"]

    @property
    def run_id(self) -> str | None:
        return self.version

    @property
    def state_key(self) -> str:
        return "wandb"

    @property
    def experiment(self) -> Any:
        """The wandb run (started on first use; reused when one is already running)."""
        if self._experiment is None:
            if self._offline:
                os.environ["WANDB_MODE"] = "offline"
            if wandb.run is not None:
                self._experiment = wandb.run
            else:
                self._experiment = wandb.init(**self._init)
                self._experiment.define_metric("trainer/global_step")
                self._experiment.define_metric(
                    "*", step_metric="trainer/global_step", step_sync=True
                )
        return self._experiment

    def watch(self, model: Any, log: str | None = "gradients", log_freq: int = 100,
              log_graph: bool = True) -> None:  # fmt: skip
        """Log the model's gradients (and parameters, `log="all"`) every `log_freq` steps."""
        self.experiment.watch(model, log=log, log_freq=log_freq, log_graph=log_graph)

    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        config = {k: v if _plain(v) else str(v) for k, v in params_dict(params).items()}
        self.experiment.config.update(config, allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        metrics = add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)
        if step is None:
            self.experiment.log(dict(metrics))
        else:
            self.experiment.log({**metrics, "trainer/global_step": step})

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if self._log_model == "all" or (
            self._log_model is True and getattr(checkpoint_callback, "save_top_k", None) == -1
        ):
            self._log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    def finalize(self, status: str) -> None:
        # As Lightning: the run stays open (wandb ends it at exit), so a later stage logs on.
        if run_status(status) == "FINISHED" and self._experiment is not None:
            for callback in self._checkpoint_callbacks.values():
                self._log_checkpoints(callback)

    def state_dict(self) -> dict[str, Any]:
        return {"id": self.version}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        check_state_keys("WandbLogger", state_dict, _STATE_KEYS)
        if self._experiment is not None:
            raise RuntimeError("WandbLogger.load_state_dict must be called before any logging")
        if state_dict.get("id"):
            self._init["id"] = state_dict["id"]  # continue the checkpointed run

    def _log_checkpoints(self, callback: Any) -> None:
        for mtime, path, score in new_checkpoints(callback, self._logged_model_time):
            artifact = wandb.Artifact(
                name=self._checkpoint_name or f"model-{self.experiment.id}",
                type="model",
                metadata={"score": None if score is None else float(score),
                          "original_filename": os.path.basename(path)},
            )  # fmt: skip
            artifact.add_file(path, name="model.ckpt", policy=self._add_file_policy)
            best = path == getattr(callback, "best_model_path", None)
            self.experiment.log_artifact(
                artifact, aliases=["latest", "best"] if best else ["latest"]
            )
            self._logged_model_time[path] = mtime


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, list, tuple, dict))
