"""Callbacks: the public `Callback` base and the callbacks we ship, called by the Trainer.

    from launcher.callbacks import ModelCheckpoint, EarlyStopping, LearningRateMonitor

    def configure_callbacks(self):
        return [ModelCheckpoint(monitor="val_acc", mode="max"), EarlyStopping("val_loss")]

    base.py               `Callback`; its methods are the hook names (`HOOKS`) the Trainer calls
    model_checkpoint.py   `ModelCheckpoint`        early_stopping.py   `EarlyStopping`
    lr_monitor.py         `LearningRateMonitor`    model_summary.py    `ModelSummary`
    progress.py           `ProgressBar` (and Lightning's `TQDMProgressBar`, `RichProgressBar`)
    finetuning.py         `BaseFinetuning`         timer.py            `Timer`
    gradient_accumulation.py  `GradientAccumulationScheduler`
    lambda_function.py    `LambdaCallback`         on_exception_checkpoint.py  `OnExceptionCheckpoint`
    stochastic_weight_avg.py  `StochasticWeightAveraging`
    prediction_writer.py  `BasePredictionWriter`

Recipes and the runtime (`launcher.train`) import these; they see the Trainer through its
public surface only (typed as `Trainer`, imported for type checking alone). A Lightning
callback we do not have raises an ImportError/AttributeError that names the alternative.
"""

from launcher.callbacks.base import Callback
from launcher.callbacks.early_stopping import EarlyStopping
from launcher.callbacks.finetuning import BaseFinetuning
from launcher.callbacks.gradient_accumulation import GradientAccumulationScheduler
from launcher.callbacks.lambda_function import LambdaCallback
from launcher.callbacks.lr_monitor import LearningRateMonitor
from launcher.callbacks.model_checkpoint import ModelCheckpoint
from launcher.callbacks.model_summary import ModelSummary, RichModelSummary
from launcher.callbacks.on_exception_checkpoint import OnExceptionCheckpoint
from launcher.callbacks.prediction_writer import BasePredictionWriter
from launcher.callbacks.progress import ProgressBar, RichProgressBar, TQDMProgressBar
from launcher.callbacks.stochastic_weight_avg import StochasticWeightAveraging
from launcher.callbacks.timer import Timer
from launcher.errors import module_getattr

__all__ = [
    "BaseFinetuning",
    "BasePredictionWriter",
    "Callback",
    "EarlyStopping",
    "GradientAccumulationScheduler",
    "LambdaCallback",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "OnExceptionCheckpoint",
    "ProgressBar",
    "RichModelSummary",
    "RichProgressBar",
    "StochasticWeightAveraging",
    "TQDMProgressBar",
    "Timer",
]

# Lightning's callbacks we do not have, and why / what to use instead (README: Lightning ->
# launcher lists them too).
NOT_SUPPORTED: dict[str, str] = {
    "BackboneFinetuning": "subclass BaseFinetuning (freeze_before_training, finetune_function)",
    "BatchSizeFinder": "no batch-size search: set the batch size in the recipe",
    "Checkpoint": "subclass Callback and call trainer.save_checkpoint, or use ModelCheckpoint",
    "DeviceStatsMonitor": "MLFlowLogger logs system/* CPU, RAM and GPU metrics itself",
    "LearningRateFinder": "no learning-rate search: set the learning rate in the recipe",
    "ModelPruning": "call torch.nn.utils.prune in a Callback hook",
    "SpikeDetection": "no loss-spike detection: check the loss in on_train_batch_end",
    "ThroughputMonitor": "the progress bar shows it/s; log your own rate with self.log",
    "WeightAveraging": "not supported yet: keep an averaged copy in a Callback",
    "EMAWeightAveraging": "not supported yet: keep an EMA copy in a Callback",
}


__getattr__ = module_getattr("launcher.callbacks", NOT_SUPPORTED)
