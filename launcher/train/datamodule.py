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
import os
from typing import TYPE_CHECKING, Any, TypeVar

from launcher.train.module import (
    AttributeDict,
    collect_hparams,
    instantiate_from_checkpoint,
    read_checkpoint,
)

if TYPE_CHECKING:
    from launcher.train.trainer import Trainer

_D = TypeVar("_D", bound="DataModule")


class DataModule:
    """Base class of recipe data modules; define the dataloader methods you need."""

    def __init__(self) -> None:
        self._hparams = AttributeDict()
        self._hparams_name: str | None = None
        self.trainer: Trainer | None = None  # set by the Trainer that uses it

    @property
    def hparams(self) -> AttributeDict:
        return self._hparams

    @property
    def hparams_name(self) -> str | None:
        """Which `__init__` argument(s) `hparams` came from ("kwargs", one argument's name, or
        None): Lightning's checkpoint key `datamodule_hparams_name`."""
        return self._hparams_name

    def save_hyperparameters(self, *args: Any, ignore: list[str] | str | None = None) -> None:
        """Capture the calling `__init__`'s arguments (or one dict's contents) into `hparams`."""
        frame = inspect.currentframe()
        if frame is not None and frame.f_back is not None:
            hparams, self._hparams_name = collect_hparams(self, frame.f_back, args, ignore)
            self._hparams.update(hparams)

    @classmethod
    def load_from_checkpoint(
        cls: type[_D],
        checkpoint_path: str | os.PathLike[str],
        map_location: Any = None,
        hparams_file: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> _D:
        """A DataModule built from a checkpoint's `datamodule_hyper_parameters` (`kwargs` win),
        with the state its `state_dict` saved (under its class's qualified name), as Lightning.

        dm = DigitsData.load_from_checkpoint("last.ckpt", batch_size=128)
        """
        checkpoint = read_checkpoint(checkpoint_path, map_location, None, None)
        if hparams_file is not None:
            hparams = read_checkpoint(checkpoint_path, map_location, None, hparams_file)
            checkpoint["datamodule_hyper_parameters"] = hparams["hyper_parameters"]
        dm = instantiate_from_checkpoint(cls, checkpoint, "datamodule_hyper_parameters", kwargs)
        if cls.__qualname__ in checkpoint:
            dm.load_state_dict(checkpoint[cls.__qualname__])
        return dm

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
