"""Experiment loggers: the write side of tracking, inside a training process.

    from launcher.loggers import MLflowLogger, CSVLogger
    loggers = [MLflowLogger("mnist", save_dir="outputs", spool_dir=run_dir), CSVLogger(run_dir)]

    base.py             `Logger`: what the trainer calls on a logger (no-op defaults)
    mlflow.py           `MLflowLogger`: queues on the training thread, a background thread sends
    sender.py           `Sender`: applies the logger's records to one MLflow store; its limits
    remote_sender.py    `RemoteSender`: that `Sender` in a helper process, off the trainer's GIL
    spool.py            records kept while MLflow is unreachable, and their replay (`launch sync`)
    csv.py              `CSVLogger`: metrics as a long-format CSV file, hparams as JSON
    system_metrics.py   CPU, RAM and GPU samples that `MLflowLogger` logs as `system/*`

Only global rank 0 constructs loggers. Runs as MLflow keeps them (reading them back, what a
run records about itself, the local server) are in `launcher.tracking`.

Imports `launcher.tracking`, `launcher.common` and `launcher.errors`; `launcher.train` only for
type hints (the trainer calls loggers, not the other way round). Imported by the runtime, the
CLI (`launch sync`) and recipes. Importing this package imports neither mlflow nor torch: the
names below resolve on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Logger": "launcher.loggers.base",
    "MLflowLogger": "launcher.loggers.mlflow",
    "CSVLogger": "launcher.loggers.csv",
    "replay_spool": "launcher.loggers.spool",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'launcher.loggers' has no attribute {name!r}")
