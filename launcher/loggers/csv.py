"""`CSVLogger`: metrics as `<save_dir>/<name>.csv` in long format, hparams as `hparams.json`.

    logger = CSVLogger("outputs/mnist/run-1")
    logger.log_metrics({"train/loss": 0.7, "lr": 0.01}, step=10)   # rows: 10,train/loss,0.7 ...

Long format (`step,key,value`) because new metric names appear mid-run (validation, LR): the
file is append-only and never needs its header rewritten. Wide view:
`pandas.read_csv(path).pivot_table(index="step", columns="key", values="value")`.

Resume: a resumed job re-logs the steps after its checkpoint, so `load_state_dict` drops the
rows above the checkpoint's last step before appending again; each (key, step) stays unique.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from launcher.common.files import atomic_write_text
from launcher.loggers.base import Logger

if TYPE_CHECKING:
    from _csv import Writer  # what csv.writer returns; typeshed's name, not importable at run time

HEADER = ["step", "key", "value"]


class CSVLogger(Logger):
    """Write metrics to a CSV file and hyperparameters to JSON, with no extra dependency."""

    name = "csv"

    def __init__(self, save_dir: str, name: str = "metrics") -> None:
        self.save_dir = Path(save_dir)
        self.path = self.save_dir / f"{name}.csv"
        self.hparams_path = self.save_dir / "hparams.json"
        self._file: TextIO | None = None
        self._writer: Writer | None = None
        self._resumed = False
        self._last_step: int | None = None

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        merged = json.loads(self.hparams_path.read_text()) if self.hparams_path.exists() else {}
        merged.update(params)
        atomic_write_text(
            self.hparams_path, json.dumps(merged, indent=2, sort_keys=True, default=str)
        )

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        writer = self._writer or self._open()
        for key, value in metrics.items():
            writer.writerow((step, key, float(value)))
        self._last_step = step if self._last_step is None else max(step, self._last_step)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def finalize(self, status: str) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None

    def state_dict(self) -> dict[str, Any]:
        # Called when a checkpoint is written: what is on disk now is what the checkpoint covers.
        self.flush()
        return {"last_step": self._last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        unknown = set(state_dict) - {"last_step"}
        if unknown:
            raise ValueError(
                f"unknown CSVLogger state keys {sorted(unknown)}; valid: ['last_step']"
            )
        if self._file is not None:
            raise RuntimeError("CSVLogger.load_state_dict must be called before any logging")
        self._resumed = True
        self._last_step = last = state_dict.get("last_step")
        if not self.path.exists():
            return
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        kept = [r for r in rows if last is not None and _is_row(r) and int(r[0]) <= last]
        text = io.StringIO()  # no newline translation: the rows keep csv's "\r\n" as written
        csv.writer(text).writerows([HEADER, *kept])
        atomic_write_text(self.path, text.getvalue())

    def _open(self) -> Writer:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        # A fresh run starts a fresh file; a resumed one appends to the truncated file.
        append = self._resumed and self.path.exists()
        self._file = open(self.path, "a" if append else "w", newline="")  # noqa: SIM115
        writer = self._writer = csv.writer(self._file)
        if not append:
            writer.writerow(HEADER)
        return writer


def _is_row(row: list[str]) -> bool:
    """A complete row; a crash can leave the last line torn."""
    if len(row) != 3:
        return False
    try:
        int(row[0])
        float(row[2])
    except ValueError:
        return False
    return True
