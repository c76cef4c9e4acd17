"""Experiment loggers: the write side of tracking, inside a training process.

    from launcher.loggers import MLflowLogger, CSVLogger
    loggers = [MLflowLogger("mnist", save_dir="outputs", spool_dir=run_dir), CSVLogger(run_dir)]

    base.py             `Logger`: what the trainer calls on a logger (Lightning's names, no-ops)
    mlflow.py           `MLflowLogger` (and Lightning's `MLFlowLogger`): queues on the training
                        thread, a background thread sends
    sender.py           `Sender`: applies the logger's records to one MLflow store; its limits
    remote_sender.py    `RemoteSender`: that `Sender` in a helper process, off the trainer's GIL
    spool.py            records kept while MLflow is unreachable, and their replay (`launch sync`)
    versioned.py        `VersionedLogger`: Lightning's `save_dir/name/version_N` folders
    csv.py              `CSVLogger`: Lightning's wide metrics.csv and hparams.yaml
    tensorboard.py      `TensorBoardLogger`: event files (needs `tensorboard`)
    wandb.py            `WandbLogger`: Weights & Biases (needs `wandb`)
    system_metrics.py   CPU, RAM and GPU samples that `MLflowLogger` logs as `system/*`

Only global rank 0 constructs loggers. Runs as MLflow keeps them (reading them back, what a
run records about itself, the local server) are in `launcher.tracking`.

Imports `launcher.tracking`, `launcher.common` and `launcher.errors`; `launcher.train` only for
type hints (the trainer calls loggers, not the other way round). Imported by the runtime, the
CLI (`launch sync`) and recipes. Importing this package imports neither mlflow nor torch: the
names below resolve on first use. A Lightning logger we do not have (`CometLogger`...) raises
an ImportError (`launcher.errors.NotSupportedError`) naming the alternative.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Logger": "launcher.loggers.base",
    "MLflowLogger": "launcher.loggers.mlflow",
    "MLFlowLogger": "launcher.loggers.mlflow",
    "CSVLogger": "launcher.loggers.csv",
    "TensorBoardLogger": "launcher.loggers.tensorboard",
    "WandbLogger": "launcher.loggers.wandb",
    "replay_spool": "launcher.loggers.spool",
}

# Lightning's other loggers: not here, and what to use instead.
_NOT_SUPPORTED = ("CometLogger", "NeptuneLogger", "LitLogger")

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _NOT_SUPPORTED:
        from launcher.errors import not_supported

        raise not_supported("launcher.loggers", name, "use MLFlowLogger, CSVLogger, "
                            "TensorBoardLogger, WandbLogger, or any object with the Logger "
                            "methods (launcher.loggers.Logger)")  # fmt: skip
    raise AttributeError(f"module 'launcher.loggers' has no attribute {name!r}")
