"""Callbacks: hooks the trainer calls during fit/validate/test.

from launcher.callbacks import ModelCheckpoint, EarlyStopping, LearningRateMonitor

def configure_callbacks(self):
    return [ModelCheckpoint(monitor="val_acc", mode="max"), EarlyStopping("val_loss")]
"""

from launcher.callbacks.base import Callback
from launcher.callbacks.early_stopping import EarlyStopping
from launcher.callbacks.lr_monitor import LearningRateMonitor
from launcher.callbacks.model_checkpoint import ModelCheckpoint
from launcher.callbacks.model_summary import ModelSummary
from launcher.callbacks.progress import ProgressBar

__all__ = [
    "Callback",
    "EarlyStopping",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "ProgressBar",
]
