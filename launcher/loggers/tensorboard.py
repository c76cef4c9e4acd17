"""`TensorBoardLogger`: Lightning's, event files in `save_dir/name/version_N[/sub_dir]/`.

    logger = TensorBoardLogger("logs", name="mnist")   # logs/mnist/version_0
    logger.log_hyperparams({"lr": 0.01})               # hparams tab (+ hp_metric=-1), hparams.yaml
    logger.log_metrics({"train_loss": 0.7}, step=10)   # a scalar per key
    logger.finalize("success")

Writes through `torch.utils.tensorboard.SummaryWriter` (needs `pip install tensorboard`; the
error says so). Resume: the version is in the checkpoint and the writer is opened with
`purge_step` one past the checkpoint's step, so TensorBoard drops the events a requeued job
replays.
"""

from __future__ import annotations

import logging
import os
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from launcher.loggers.base import add_prefix, check_state_keys, params_dict, run_status, scalar
from launcher.loggers.versioned import VersionedLogger
from launcher.tracking.run_info import flatten

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

log = logging.getLogger("launcher.loggers.tensorboard")

_STATE_KEYS = {"version", "last_step"}


class TensorBoardLogger(VersionedLogger):
    """Lightning's `TensorBoardLogger` (see module doc); `experiment` is the `SummaryWriter`."""

    kind = "tensorboard"
    NAME_HPARAMS_FILE = "hparams.yaml"

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        log_graph: bool = False,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """`kwargs` go to `SummaryWriter` (`max_queue`, `flush_secs`...), as in Lightning."""
        super().__init__(save_dir, name, version, prefix)
        self._log_graph = log_graph
        self._default_hp_metric = default_hp_metric
        self._sub_dir = None if sub_dir is None else os.fspath(sub_dir)
        self._kwargs = kwargs
        self._experiment: SummaryWriter | None = None
        self._last_step: int | None = None
        self._purge_step: int | None = None
        self.hparams: dict[str, Any] = {}

    @property
    def log_dir(self) -> str:
        folder = super().log_dir
        if self._sub_dir is not None:
            folder = os.path.join(folder, self._sub_dir)
        return os.path.expanduser(os.path.expandvars(folder))

    @property
    def sub_dir(self) -> str | None:
        return self._sub_dir

    @property
    def experiment(self) -> SummaryWriter:
        """The `SummaryWriter` of this version's folder (made on first use)."""
        if self._experiment is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError(
                    "TensorBoardLogger needs the tensorboard package: pip install tensorboard"
                ) from exc
            self._started = True
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = SummaryWriter(
                log_dir=self.log_dir, purge_step=self._purge_step, **self._kwargs
            )
        return self._experiment

    def log_hyperparams(
        self,
        params: dict[str, Any] | Namespace,
        metrics: dict[str, Any] | float | None = None,
        step: int | None = None,
    ) -> None:
        """Record `params` for the hparams tab, with `metrics` (default `hp_metric=-1`)."""
        from torch.utils.tensorboard.summary import hparams

        params = params_dict(params)
        self.hparams.update(params)
        if metrics is None:
            metrics = {"hp_metric": -1} if self._default_hp_metric else None
        elif not isinstance(metrics, dict):
            metrics = {"hp_metric": metrics}
        if not metrics:
            return
        self.log_metrics(metrics, step)
        exp, ssi, sei = hparams(_tb_safe(flatten(params)), metrics)
        writer = self.experiment.file_writer  # set while the writer is open
        if writer is None:
            raise RuntimeError("TensorBoardLogger: the SummaryWriter is closed")
        for summary in (exp, ssi, sei):
            writer.add_summary(summary, step)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        for key, value in add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR).items():
            value = scalar(value)
            if isinstance(value, dict):
                self.experiment.add_scalars(key, value, step)
            else:
                try:
                    self.experiment.add_scalar(key, value, step)
                except Exception as exc:
                    raise ValueError(
                        f"TensorBoardLogger cannot log {key}={value!r}: log a number, a tensor "
                        "with one element, or a dict of them"
                    ) from exc
        if step is not None:
            self._last_step = step if self._last_step is None else max(step, self._last_step)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Trace `model` on `input_array` (default `model.example_input_array`), if `log_graph`."""
        if not self._log_graph:
            return
        input_array = (
            getattr(model, "example_input_array", None) if input_array is None else input_array
        )
        if input_array is None:
            log.warning(
                "Could not log the graph to TensorBoard: set `model.example_input_array` or "
                "pass `input_array`"
            )
            return
        self.experiment.add_graph(model, input_array)

    def save(self) -> None:
        if self._experiment is None:
            return
        self._experiment.flush()
        path = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)
        if os.path.isdir(self.log_dir) and not os.path.isfile(path):
            with open(path, "w", newline="") as f:
                yaml.dump(self.hparams, f)

    def finalize(self, status: str) -> None:
        if self._experiment is None:
            return
        if run_status(status) == "FINISHED":
            self.save()
        self._experiment.flush()
        self._experiment.close()
        self._experiment = None  # a later stage opens a new writer in the same folder

    def state_dict(self) -> dict[str, Any]:
        if self._experiment is not None:
            self._experiment.flush()
        return {**super().state_dict(), "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        check_state_keys("TensorBoardLogger", state_dict, _STATE_KEYS)
        super().load_state_dict(state_dict)
        last = state_dict.get("last_step")
        self._last_step = last
        self._purge_step = None if last is None else int(last) + 1


def _tb_safe(params: dict[str, Any]) -> dict[str, Any]:
    """The hparams tab takes numbers, strings and bools; anything else as its text."""
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in params.items()}
