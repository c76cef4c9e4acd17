"""launcher: Lightning-style recipes, trained locally, on SLURM or on Ray.

    from launcher import Module, DataModule, Trainer
    from launcher.callbacks import ModelCheckpoint, EarlyStopping

Names are imported lazily so that `launch --help` never imports torch.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# MLflow 3 phones home (usage telemetry) from a background thread; a training job talks to its
# own tracking store and nothing else. Set before any launcher module can import mlflow, and
# inherited by the workers and `mlflow server` processes we start. A user's own value wins.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

_LAZY = {
    "Module": "launcher.train.module",
    "LightningModule": "launcher.train.module",
    "DataModule": "launcher.train.datamodule",
    "LightningDataModule": "launcher.train.datamodule",
    "Trainer": "launcher.train.trainer",
    "seed_everything": "launcher.train.seed",
    "Callback": "launcher.callbacks.base",
}

__all__ = list(_LAZY)

# Names recipes import from `lightning` / `lightning.pytorch` that we do not have, and why.
NOT_SUPPORTED = {
    "Fabric": "launcher runs Lightning-style recipes (Module + Trainer); for a hand-written "
    "loop use torch.distributed directly, launched with `launch --devices N`",
    "LightningCLI": "the `launch` command is the CLI: `launch recipe.py --set trainer.max_epochs=3`",
    "LightningWork": "Lightning apps are not supported: run recipes with `launch`",
    "LightningFlow": "Lightning apps are not supported: run recipes with `launch`",
    "LightningApp": "Lightning apps are not supported: run recipes with `launch`",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        attr = name.replace("Lightning", "")
        return getattr(module, attr)
    if name in NOT_SUPPORTED:
        from launcher.errors import not_supported

        raise not_supported("launcher", name, NOT_SUPPORTED[name])
    raise AttributeError(f"module 'launcher' has no attribute {name!r}")
