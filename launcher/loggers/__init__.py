"""Experiment loggers; only global rank 0 constructs them.

    from launcher.loggers import MLflowLogger, CSVLogger
    loggers = [MLflowLogger("mnist", save_dir="outputs", spool_dir=run_dir), CSVLogger(run_dir)]

Importing this package imports neither mlflow nor torch: names resolve on first use.
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
