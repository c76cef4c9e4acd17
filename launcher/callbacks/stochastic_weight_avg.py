"""`StochasticWeightAveraging`: average the weights of the last epochs (Lightning's SWA).

    Trainer(max_epochs=20, callbacks=[StochasticWeightAveraging(swa_lrs=1e-2)])

From epoch `swa_epoch_start` (an int, or a fraction of max_epochs) the optimizer's schedule
becomes `torch.optim.swa_utils.SWALR` (annealing to `swa_lrs`) and, as each epoch starts, the
weights join a running average; when training ends the averaged weights replace the model's.
The average, its count and the SWA schedule are in the checkpoint: a resumed run continues
them exactly. Models with BatchNorm are refused (Lightning's extra statistics epoch is not
done here).
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from launcher.callbacks.base import Callback
from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer

AvgFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class StochasticWeightAveraging(Callback):
    """Lightning's arguments: `swa_lrs` (one float, or one per param group),
    `swa_epoch_start`, `annealing_epochs`, `annealing_strategy` ("cos" | "linear"),
    `avg_fn(averaged, current, n)`, `device` (where the average lives; None: the model's)."""

    def __init__(
        self,
        swa_lrs: float | list[float],
        swa_epoch_start: int | float = 0.8,
        annealing_epochs: int = 10,
        annealing_strategy: str = "cos",
        avg_fn: AvgFn | None = None,
        device: torch.device | str | None = torch.device("cpu"),  # noqa: B008 (Lightning's)
    ) -> None:
        err = "swa_epoch_start should be a >0 integer or a float between 0 and 1."
        if isinstance(swa_epoch_start, int) and swa_epoch_start < 1:
            raise UserError(err)
        if isinstance(swa_epoch_start, float) and not 0 <= swa_epoch_start <= 1:
            raise UserError(err)
        wrong = not isinstance(swa_lrs, (float, list))
        wrong = wrong or (isinstance(swa_lrs, float) and swa_lrs <= 0)
        wrong = wrong or (isinstance(swa_lrs, list)
                          and not all(isinstance(lr, float) and lr > 0 for lr in swa_lrs))  # fmt: skip
        if wrong:
            raise UserError("The `swa_lrs` should a positive float, or a list of positive floats")
        if annealing_strategy not in ("cos", "linear"):
            raise UserError(
                f"annealing_strategy must be 'cos' or 'linear', got {annealing_strategy!r}"
            )
        if avg_fn is not None and not callable(avg_fn):
            raise UserError("The `avg_fn` should be callable.")
        self._swa_epoch_start = swa_epoch_start
        self._swa_lrs = swa_lrs
        self._annealing_epochs = annealing_epochs
        self._annealing_strategy = annealing_strategy
        self._avg_fn = avg_fn or self.avg_fn
        self._device = device
        self.n_averaged: torch.Tensor | None = None
        self._average_model: nn.Module | None = None
        self._initialized = False
        self._swa_scheduler: Any = None
        self._scheduler_state: dict[str, Any] | None = None
        self._init_n_averaged = 0
        self._latest_update_epoch = -1
        self._max_epochs = -1

    @property
    def swa_start(self) -> int:
        assert isinstance(self._swa_epoch_start, int)
        return max(self._swa_epoch_start - 1, 0)  # 0-based

    @property
    def swa_end(self) -> float:
        return float("inf") if self._max_epochs == -1 else self._max_epochs - 1

    # -- hooks ---------------------------------------------------------------------------
    def setup(self, trainer: Trainer, module: Module, stage: str) -> None:
        if stage != "fit":
            return
        if any(isinstance(m, _BatchNorm) for m in module.modules()):
            raise UserError(
                "StochasticWeightAveraging here does not support models with BatchNorm (the "
                "extra epoch that recomputes their statistics for the averaged weights is not "
                "done); use torch.optim.swa_utils.update_bn after fit, or a model without it"
            )
        max_epochs = trainer.max_epochs
        self._max_epochs = -1 if max_epochs is None else max_epochs
        if isinstance(self._swa_epoch_start, float):
            if self._max_epochs == -1:
                raise UserError("SWA with `swa_epoch_start` as a float is not supported when "
                                "`max_epochs=-1`. Please provide `swa_epoch_start` as an integer.")  # fmt: skip
            self._swa_epoch_start = int(self._max_epochs * self._swa_epoch_start)
        attached = module.trainer
        module.trainer = None  # copy the weights, not the trainer
        try:
            self._average_model = deepcopy(module)
        finally:
            module.trainer = attached

    def on_fit_start(self, trainer: Trainer, module: Module) -> None:
        if len(trainer.optimizers) != 1:
            raise UserError("SWA currently works with 1 `optimizer`.")
        if len(trainer.lr_scheduler_configs) > 1:
            raise UserError("SWA currently not supported for more than 1 `lr_scheduler`.")

    def on_load_checkpoint(self, trainer: Trainer, module: Module,
                           checkpoint: dict[str, Any]) -> None:  # fmt: skip
        """A resume inside the SWA window: the SWA schedule exists before the checkpoint's
        schedulers and optimizer state load into it (saved with the SWALR in its place)."""
        saved = checkpoint.get("callbacks", {}).get(self.state_key)
        if saved and saved.get("scheduler_state") is not None:
            self.load_state_dict(saved)
            self._start_swa(trainer, module)

    def on_train_epoch_start(self, trainer: Trainer, module: Module) -> None:
        epoch = trainer.current_epoch
        in_window = self.swa_start <= epoch <= self.swa_end
        if not self._initialized and in_window:
            self._start_swa(trainer, module)
        if in_window and epoch > self._latest_update_epoch:
            assert self.n_averaged is not None and self._average_model is not None
            self.update_parameters(self._average_model, module, self.n_averaged, self._avg_fn)
            self._latest_update_epoch = epoch

    def on_train_end(self, trainer: Trainer, module: Module) -> None:
        # the loop has moved past the last epoch when this runs
        last = trainer.current_epoch - 1 == self.swa_end or self._max_epochs == -1
        if last and self._average_model is not None and self._initialized:
            self.transfer_weights(self._average_model, module)

    def _start_swa(self, trainer: Trainer, module: Module) -> None:
        from torch.optim.swa_utils import SWALR

        from launcher.train.optim import SchedulerConfig

        self._initialized = True
        assert self._average_model is not None
        self._average_model = self._average_model.to(self._device or module.device)
        optimizer = trainer.optimizers[0]
        if isinstance(self._swa_lrs, float):
            self._swa_lrs = [self._swa_lrs] * len(optimizer.param_groups)
        for lr, group in zip(self._swa_lrs, optimizer.param_groups, strict=False):
            group["initial_lr"] = lr
        max_epochs = self._max_epochs
        self._swa_scheduler = SWALR(
            optimizer,
            swa_lr=self._swa_lrs,  # type: ignore[arg-type]  # one per group works too
            anneal_epochs=self._annealing_epochs,
            anneal_strategy=self._annealing_strategy,  # type: ignore[arg-type]
            last_epoch=max_epochs if self._annealing_strategy == "cos" else -1,
        )
        if self._scheduler_state is not None:
            self._swa_scheduler.load_state_dict(self._scheduler_state)
        config = SchedulerConfig(self._swa_scheduler)  # every epoch, as Lightning's
        if trainer.lr_scheduler_configs:
            trainer.lr_scheduler_configs[0] = config
        else:
            trainer.lr_scheduler_configs.append(config)
        if self.n_averaged is None:
            self.n_averaged = torch.tensor(self._init_n_averaged, dtype=torch.long,
                                           device=module.device)  # fmt: skip

    # -- Lightning's static helpers ----------------------------------------------------------
    @staticmethod
    def transfer_weights(src: nn.Module, dst: nn.Module) -> None:
        for src_param, dst_param in zip(src.parameters(), dst.parameters(), strict=True):
            dst_param.detach().copy_(src_param.to(dst_param.device))

    @staticmethod
    def update_parameters(average_model: nn.Module, model: nn.Module, n_averaged: torch.Tensor,
                          avg_fn: AvgFn) -> None:  # fmt: skip
        for p_swa, p_model in zip(average_model.parameters(), model.parameters(), strict=True):
            device = p_swa.device
            p_swa_, p_model_ = p_swa.detach(), p_model.detach().to(device)
            src = p_model_ if n_averaged == 0 else avg_fn(p_swa_, p_model_, n_averaged.to(device))
            p_swa_.copy_(src)
        n_averaged += 1

    @staticmethod
    def avg_fn(averaged: torch.Tensor, current: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        return averaged + (current - averaged) / (num + 1)

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "n_averaged": 0 if self.n_averaged is None else self.n_averaged.item(),
            "latest_update_epoch": self._latest_update_epoch,
            "scheduler_state": None if self._swa_scheduler is None
            else self._swa_scheduler.state_dict(),
            "average_model_state": None if self._average_model is None
            else self._average_model.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._init_n_averaged = state_dict["n_averaged"]
        self._latest_update_epoch = state_dict["latest_update_epoch"]
        self._scheduler_state = state_dict["scheduler_state"]
        if self._average_model is not None and state_dict["average_model_state"] is not None:
            self._average_model.load_state_dict(state_dict["average_model_state"])
