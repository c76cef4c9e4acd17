"""`CSVLogger`: Lightning's layout, `save_dir/name/version_N/{metrics.csv,hparams.yaml}`.

    logger = CSVLogger("logs", name="mnist")        # logs/mnist/version_0 (the next free N)
    logger.log_hyperparams({"lr": 0.01})            # -> hparams.yaml, merged with earlier calls
    logger.log_metrics({"train_loss": 0.7}, step=9) # buffered; on disk every 100 steps
    logger.finalize("success")                      # and at save()/flush()/finalize()

The CSV is wide, as Lightning writes it: one row per `log_metrics` call, a `step` column, one
column per metric (sorted), empty where a row lacks it; a metric that appears later rewrites
the file with the wider header. Logging on after `finalize` (`trainer.test()` after `fit`)
appends to the same file.

Resume: `state_dict()` writes the buffer and records the version and how many rows are on
disk; `load_state_dict` (before any logging) points the logger back at that version and cuts
the file to those rows, so the steps a requeued job replays are written once. A fresh logger
whose folder already has a `metrics.csv` replaces it, as Lightning does.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from launcher.common.files import append_whole, atomic_write_text, free_bytes, is_out_of_space
from launcher.errors import OutOfSpace
from launcher.loggers.base import add_prefix, check_state_keys, params_dict, scalar
from launcher.loggers.versioned import VersionedLogger

log = logging.getLogger("launcher.loggers.csv")

_STATE_KEYS = {"version", "rows", "last_step"}


class ExperimentWriter:
    """The files of one version folder; `CSVLogger.experiment` (Lightning's name and methods)."""

    NAME_METRICS_FILE = "metrics.csv"
    NAME_HPARAMS_FILE = "hparams.yaml"

    def __init__(self, log_dir: str, keep_rows: int | None = None) -> None:
        """`keep_rows`: resume, keeping that many rows of the file; None: start a fresh file."""
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        self.hparams_file_path = os.path.join(log_dir, self.NAME_HPARAMS_FILE)
        self.metrics: list[dict[str, Any]] = []  # rows not yet on disk
        self.metrics_keys: list[str] = []  # the file's header
        self.hparams: dict[str, Any] = {}
        self.rows_on_disk = 0
        self.out_of_space: OutOfSpace | None = None  # the last save's, once raised
        path = Path(self.metrics_file_path)
        if keep_rows is None:
            if path.parent.is_dir() and any(path.parent.iterdir()):
                log.warning(
                    "Experiment logs directory %s exists and is not empty; its metrics.csv is "
                    "replaced by this run's",
                    log_dir,
                )
            path.unlink(missing_ok=True)
        else:
            self._keep(keep_rows)
            if Path(self.hparams_file_path).is_file():
                self.hparams = yaml.safe_load(Path(self.hparams_file_path).read_text()) or {}
        os.makedirs(log_dir, exist_ok=True)

    def log_hparams(self, params: dict[str, Any]) -> None:
        """Merge `params` into the recorded ones and rewrite hparams.yaml."""
        self.hparams.update(params)
        os.makedirs(self.log_dir, exist_ok=True)
        atomic_write_text(self.hparams_file_path, yaml.dump(_yaml_safe(self.hparams)))

    def log_metrics(self, metrics_dict: Mapping[str, Any], step: int | None = None) -> None:
        """Buffer one row: the metrics (tensors as numbers) and `step`."""
        if step is None:
            step = len(self.metrics)
        row = {k: scalar(v) for k, v in metrics_dict.items()}
        row["step"] = step
        self.metrics.append(row)

    def save(self) -> None:
        """Append the buffered rows; rewrite the file first when they bring new columns.

        A full disk raises `OutOfSpace` and leaves the file as it was (the rows stay buffered).
        """
        if not self.metrics:
            return
        keys = self.metrics_keys
        new_keys = set().union(*self.metrics) - set(keys)
        exists = os.path.isfile(self.metrics_file_path)
        text = io.StringIO()
        rewritten = False
        try:
            if new_keys:
                self.metrics_keys = sorted([*keys, *new_keys])
                if exists:
                    self._rewrite(_read_rows(self.metrics_file_path))
                rewritten = True
            writer = csv.DictWriter(text, fieldnames=self.metrics_keys)
            if not exists:
                writer.writeheader()
            writer.writerows(self.metrics)
            append_whole(self.metrics_file_path, text.getvalue().encode())
        except OSError as exc:
            if not is_out_of_space(exc):
                raise
            if not rewritten:  # the file keeps its old header
                self.metrics_keys = keys
            needed = len(text.getvalue()) or 100 * len(self.metrics)  # rows not written yet
            self.out_of_space = OutOfSpace(
                self.metrics_file_path, needed, free_bytes(self.metrics_file_path)
            )
            raise self.out_of_space from exc
        self.rows_on_disk += len(self.metrics)
        self.metrics = []

    def _keep(self, count: int) -> None:
        """Cut the file to its first `count` complete rows, header narrowed to what they hold."""
        path = Path(self.metrics_file_path)
        rows = _read_rows(self.metrics_file_path)[:count] if path.is_file() else []
        if not rows:
            path.unlink(missing_ok=True)
            return
        self.metrics_keys = sorted(
            {k for row in rows for k, v in row.items() if v != ""} | {"step"}
        )
        self._rewrite(rows)
        self.rows_on_disk = len(rows)

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        text = io.StringIO()  # no newline translation: the rows keep csv's "\r\n"
        writer = csv.DictWriter(text, fieldnames=self.metrics_keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_file_path, text.getvalue())


class CSVLogger(VersionedLogger):
    """Lightning's `CSVLogger`: metrics.csv and hparams.yaml in `log_dir` (see module doc)."""

    kind = "csv"

    def __init__(
        self,
        save_dir: str | os.PathLike[str],
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        super().__init__(save_dir, name, version, prefix)
        self._flush_logs_every_n_steps = flush_logs_every_n_steps
        self._experiment: ExperimentWriter | None = None
        self._keep_rows: int | None = None  # set by load_state_dict
        self._last_step: int | None = None

    @property
    def experiment(self) -> ExperimentWriter:
        """The writer of this version's files (made, with the folder, on first use)."""
        if self._experiment is None:
            self._started = True
            self._experiment = ExperimentWriter(self.log_dir, keep_rows=self._keep_rows)
        return self._experiment

    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None) -> None:
        self.experiment.log_hparams(params_dict(params))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        writer = self.experiment
        if step is None:
            step = len(writer.metrics)
        writer.log_metrics(add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR), step)
        self._last_step = step if self._last_step is None else max(step, self._last_step)
        if (step + 1) % self._flush_logs_every_n_steps == 0:
            self.save()

    def save(self) -> None:
        if self._experiment is not None:
            self._experiment.save()

    def finalize(self, status: str) -> None:
        # Only writes: the file stays this logger's, so a later stage appends to it.
        said = self._experiment is not None and self._experiment.out_of_space is not None
        try:
            self.save()
        except OutOfSpace:
            if not said:
                raise
            # The run is failing on it already (said once): the rows stay unwritten, the
            # file whole.

    def state_dict(self) -> dict[str, Any]:
        # Called when a checkpoint is written: what is on disk now is what the checkpoint covers.
        self.save()
        rows = self._experiment.rows_on_disk if self._experiment is not None else 0
        return {**super().state_dict(), "rows": rows, "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        check_state_keys("CSVLogger", state_dict, _STATE_KEYS)
        super().load_state_dict(state_dict)
        self._keep_rows = int(state_dict.get("rows") or 0)
        self._last_step = state_dict.get("last_step")


def _read_rows(path: str) -> list[dict[str, str]]:
    """The file's complete rows; a crash can leave the last line torn (no line end)."""
    with open(path, newline="") as f:
        text = f.read()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _yaml_safe(params: dict[str, Any]) -> dict[str, Any]:
    """As Lightning's hparams.yaml: a value YAML cannot hold is written as its type's name."""
    out = {}
    for key, value in params.items():
        try:
            yaml.dump(value)
            out[key] = value
        except (TypeError, ValueError, yaml.YAMLError):
            log.warning(
                "Skipping '%s' parameter because it is not possible to safely dump to YAML.", key
            )
            out[key] = type(value).__name__
    return out
