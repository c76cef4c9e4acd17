"""launcher: Lightning-style recipes, trained locally, on SLURM or on Ray.

    from launcher import Module, DataModule, Trainer
    from launcher.callbacks import ModelCheckpoint, EarlyStopping

Names are imported lazily so that `launch --help` never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Module": "launcher.module",
    "LightningModule": "launcher.module",
    "DataModule": "launcher.datamodule",
    "LightningDataModule": "launcher.datamodule",
    "Trainer": "launcher.trainer",
    "seed_everything": "launcher.seed",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        attr = name.replace("Lightning", "")
        return getattr(module, attr)
    raise AttributeError(f"module 'launcher' has no attribute {name!r}")
