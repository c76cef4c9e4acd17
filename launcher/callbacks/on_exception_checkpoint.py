"""`OnExceptionCheckpoint`: a checkpoint written when `fit` fails (Lightning's).

    Trainer(callbacks=[OnExceptionCheckpoint(dirpath="outputs")])
    # after a crash: trainer.fit(model, ckpt_path="outputs/on_exception.ckpt")

A run that finishes removes the file, as in Lightning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from launcher.callbacks.base import Callback

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer


class OnExceptionCheckpoint(Callback):
    """Saves `dirpath/filename.ckpt` from `on_exception` (overwriting an older one)."""

    FILE_EXTENSION = ".ckpt"

    def __init__(self, dirpath: str | os.PathLike[str], filename: str = "on_exception") -> None:
        if not filename:
            raise ValueError("The filename cannot be empty")
        self.dirpath = dirpath
        self.filename = filename
        self._failed = False

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, self.filename + self.FILE_EXTENSION)

    def on_exception(self, trainer: Trainer, module: Module, exception: BaseException) -> None:
        self._failed = True
        trainer.save_checkpoint(self.ckpt_path)

    def teardown(self, trainer: Trainer, module: Module, stage: str) -> None:
        # Lightning skips teardown after an exception; ours runs it, so keep the file then.
        if not self._failed and trainer.is_global_zero:
            Path(self.ckpt_path).unlink(missing_ok=True)
        self._failed = False
