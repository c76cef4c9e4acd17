"""`DataModule`: data loading kept apart from the model, Lightning-style.

class DigitsData(DataModule):
    def prepare_data(self):      # once per node: download, unpack
        ...
    def setup(self, stage):      # every process: build datasets
        self.train_set, self.val_set = ...
    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=64, shuffle=True)

trainer.fit(model, datamodule=DigitsData())
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from launcher.train.module import AttributeDict, capture_init_args

if TYPE_CHECKING:
    from launcher.train.trainer import Trainer


class DataModule:
    """Base class of recipe data modules; define the dataloader methods you need."""

    def __init__(self) -> None:
        self._hparams = AttributeDict()
        self.trainer: Trainer | None = None  # set by the Trainer that uses it

    @property
    def hparams(self) -> AttributeDict:
        return self._hparams

    def save_hyperparameters(self, *names: str, ignore: list[str] | str | None = None) -> None:
        """Capture the calling `__init__`'s arguments into `self.hparams`."""
        frame = inspect.currentframe()
        if frame is not None and frame.f_back is not None:
            self._hparams.update(capture_init_args(self, frame.f_back, names, ignore))

    def prepare_data(self) -> None:
        """Download or unpack data; called once per node, before `setup`."""

    def setup(self, stage: str) -> None:
        """Build datasets for `stage` ("fit", "validate", "test"); called on every process."""

    def teardown(self, stage: str) -> None:
        """Release resources after `stage`."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (nothing by default)."""
