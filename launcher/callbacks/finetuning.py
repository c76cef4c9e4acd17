"""`BaseFinetuning`: freeze parts of a model, then unfreeze them epoch by epoch (Lightning's).

    class UnfreezeBackbone(BaseFinetuning):
        def freeze_before_training(self, module):
            self.freeze(module.backbone)

        def finetune_function(self, module, epoch, optimizer):
            if epoch == 10:
                self.unfreeze_and_add_param_group(module.backbone, optimizer, lr=1e-4)

The param groups it added are in the checkpoint (by parameter name): a resumed run gets them
back before the optimizer's state is loaded into them.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from launcher.callbacks.base import Callback

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer

Modules = nn.Module | Iterable[Any]


class BaseFinetuning(Callback):
    """Override `freeze_before_training(module)` and `finetune_function(module, epoch,
    optimizer)`; the static helpers freeze, unfreeze and add param groups."""

    def __init__(self) -> None:
        self._internal_optimizer_metadata: dict[int, list[dict[str, Any]]] = {}
        self._module: nn.Module | None = None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"internal_optimizer_metadata": self._internal_optimizer_metadata}
        if self._module is not None:  # ours, for exact resume: what is frozen right now
            state["frozen"] = frozen_state(self._module)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._internal_optimizer_metadata = state_dict.get(
            "internal_optimizer_metadata", state_dict
        )

    def on_load_checkpoint(self, trainer: Trainer, module: Module,
                           checkpoint: dict[str, Any]) -> None:  # fmt: skip
        """Rebuild the saved param groups before the optimizers' states load into them
        (Lightning does it in on_fit_start; here optimizer states load before that hook)."""
        saved = checkpoint.get("callbacks", {}).get(self.state_key, {})
        metadata = saved.get("internal_optimizer_metadata", {})
        if "frozen" in saved:  # freeze_before_training ran again in setup: undo what it should
            load_frozen_state(module, saved["frozen"])
        named = dict(module.named_parameters())
        for opt_idx, optimizer in enumerate(trainer.optimizers):
            if opt_idx in metadata:
                optimizer.param_groups = _map_param_groups(metadata[opt_idx], named)

    # -- what subclasses override ------------------------------------------------------------
    def freeze_before_training(self, pl_module: Module) -> None:
        """Freeze what should not train at first."""
        raise NotImplementedError

    def finetune_function(self, pl_module: Module, epoch: int,
                          optimizer: torch.optim.Optimizer) -> None:  # fmt: skip
        """Called when each epoch starts, for each optimizer: unfreeze here."""
        raise NotImplementedError

    # -- hooks ---------------------------------------------------------------------------
    def setup(self, trainer: Trainer, module: Module, stage: str) -> None:
        self._module = module
        self.freeze_before_training(module)

    def on_train_epoch_start(self, trainer: Trainer, module: Module) -> None:
        for opt_idx, optimizer in enumerate(trainer.optimizers):
            num_param_groups = len(optimizer.param_groups)
            self.finetune_function(module, trainer.current_epoch, optimizer)
            self._store(module, opt_idx, num_param_groups, optimizer.param_groups)

    def _store(self, module: Module, opt_idx: int, num_param_groups: int,
               groups: list[dict[str, Any]]) -> None:  # fmt: skip
        names = {p: n for n, p in module.named_parameters()}
        if opt_idx not in self._internal_optimizer_metadata:
            self._internal_optimizer_metadata[opt_idx] = _map_param_groups(groups, names)
        elif num_param_groups != len(groups):
            self._internal_optimizer_metadata[opt_idx].extend(
                _map_param_groups(groups[num_param_groups:], names)
            )

    # -- helpers (static, as Lightning's) ----------------------------------------------------
    @staticmethod
    def flatten_modules(modules: Modules) -> list[nn.Module]:
        """The leaf modules of `modules`, and the parents that own parameters directly."""
        if isinstance(modules, nn.ModuleDict):
            modules = modules.values()
        if isinstance(modules, Iterable):
            found: list[nn.Module] = []
            for m in modules:
                found.extend(BaseFinetuning.flatten_modules(m))
            candidates: Iterable[nn.Module] = found
        else:
            candidates = modules.modules()
        return [m for m in candidates
                if not list(m.children()) or any(True for _ in m.parameters(recurse=False))]  # fmt: skip

    @staticmethod
    def filter_params(modules: Modules, train_bn: bool = True,
                      requires_grad: bool = True) -> Generator[nn.Parameter, None, None]:  # fmt: skip
        """The parameters of `modules` whose `requires_grad` is `requires_grad`."""
        for mod in BaseFinetuning.flatten_modules(modules):
            if isinstance(mod, _BatchNorm) and not train_bn:
                continue
            for param in mod.parameters(recurse=False):
                if param.requires_grad == requires_grad:
                    yield param

    @staticmethod
    def make_trainable(modules: Modules) -> None:
        """Unfreeze the parameters of `modules` (BatchNorm tracks running stats again)."""
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, _BatchNorm):
                module.track_running_stats = True
            for param in module.parameters(recurse=False):
                param.requires_grad = True

    @staticmethod
    def freeze_module(module: nn.Module) -> None:
        """Freeze one module's own parameters (BatchNorm stops tracking running stats)."""
        if isinstance(module, _BatchNorm):
            module.track_running_stats = False
        for param in module.parameters(recurse=False):
            param.requires_grad = False

    @staticmethod
    def freeze(modules: Modules, train_bn: bool = True) -> None:
        """Freeze `modules`; with `train_bn` their BatchNorm layers keep training."""
        for mod in BaseFinetuning.flatten_modules(modules):
            if isinstance(mod, _BatchNorm) and train_bn:
                BaseFinetuning.make_trainable(mod)
            else:
                BaseFinetuning.freeze_module(mod)

    @staticmethod
    def filter_on_optimizer(optimizer: torch.optim.Optimizer,
                            params: Iterable[nn.Parameter]) -> list[nn.Parameter]:  # fmt: skip
        """`params` that are not in any of `optimizer`'s param groups yet."""
        present = {id(p) for group in optimizer.param_groups for p in group["params"]}
        out: list[nn.Parameter] = []
        removed: list[nn.Parameter] = []
        for param in params:
            (removed if id(param) in present else out).append(param)
        if removed:
            warnings.warn(
                "The provided params to be frozen already exist within another group of this "
                "optimizer. Those parameters will be skipped.\nHINT: Did you init your optimizer "
                f"in `configure_optimizer` as such:\n {type(optimizer)}(filter(lambda p: "
                "p.requires_grad, self.parameters()), ...) ",
                stacklevel=2,
            )
        return out

    @staticmethod
    def unfreeze_and_add_param_group(
        modules: Modules,
        optimizer: torch.optim.Optimizer,
        lr: float | None = None,
        initial_denom_lr: float = 10.0,
        train_bn: bool = True,
    ) -> None:
        """Unfreeze `modules` and add their parameters to `optimizer` as a new group, at
        `lr` (default: the first group's lr / `initial_denom_lr`)."""
        BaseFinetuning.make_trainable(modules)
        params_lr = optimizer.param_groups[0]["lr"] if lr is None else float(lr)
        denom_lr = initial_denom_lr if lr is None else 1.0
        params = BaseFinetuning.filter_params(modules, train_bn=train_bn, requires_grad=True)
        new = BaseFinetuning.filter_on_optimizer(optimizer, params)
        if new:
            optimizer.add_param_group({"params": new, "lr": params_lr / denom_lr})


def _map_param_groups(
    groups: list[dict[str, Any]], mapping: dict[Any, Any]
) -> list[dict[str, Any]]:
    """Param groups with each parameter replaced by `mapping[parameter]` (names <-> tensors)."""
    return [{**{k: v for k, v in g.items() if k != "params"},
             "params": [mapping[p] for p in g["params"]]} for g in groups]  # fmt: skip


def frozen_state(module: nn.Module) -> dict[str, list[str]]:
    """Names of the frozen parameters and of the BatchNorm layers not tracking statistics."""
    return {
        "params": [n for n, p in module.named_parameters() if not p.requires_grad],
        "batch_norms": [
            n
            for n, m in module.named_modules()
            if isinstance(m, _BatchNorm) and not m.track_running_stats
        ],  # fmt: skip
    }


def load_frozen_state(module: nn.Module, state: dict[str, list[str]]) -> None:
    frozen, still = set(state["params"]), set(state["batch_norms"])
    for name, param in module.named_parameters():
        param.requires_grad = name not in frozen
    for name, mod in module.named_modules():
        if isinstance(mod, _BatchNorm):
            mod.track_running_stats = name not in still
