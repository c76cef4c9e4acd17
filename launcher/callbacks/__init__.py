"""Callbacks: the public `Callback` base and the callbacks we ship, called by the Trainer.

    from launcher.callbacks import ModelCheckpoint, EarlyStopping, LearningRateMonitor

    def configure_callbacks(self):
        return [ModelCheckpoint(monitor="val_acc", mode="max"), EarlyStopping("val_loss")]

    base.py               `Callback`; its methods are the hook names (`HOOKS`) the Trainer calls
    model_checkpoint.py   `ModelCheckpoint`        early_stopping.py   `EarlyStopping`
    lr_monitor.py         `LearningRateMonitor`    progress.py         `ProgressBar`
    timer.py              `Timer` (what `Trainer(max_time=...)` adds)

Recipes and the runtime (`launcher.train`) import these; they see the Trainer through its
public surface only (typed as `Trainer`, imported for type checking alone).
"""

from launcher.callbacks.base import Callback
from launcher.callbacks.early_stopping import EarlyStopping
from launcher.callbacks.lr_monitor import LearningRateMonitor
from launcher.callbacks.model_checkpoint import ModelCheckpoint
from launcher.callbacks.model_summary import ModelSummary
from launcher.callbacks.progress import ProgressBar
from launcher.callbacks.timer import Timer

__all__ = [
    "Callback",
    "EarlyStopping",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "ProgressBar",
    "Timer",
]
