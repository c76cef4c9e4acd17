"""What the Trainer resolves before its loops run: device, dataloaders, callbacks, loggers,
hooks, batch limits.

    device = resolve_device("auto", "auto", 1, env)
    hooks = collect_hooks(trainer, callbacks, model)     # {"on_train_batch_end": [fn, ...]}
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from launcher.callbacks.base import HOOKS, Callback
from launcher.cluster_env import ClusterEnvironment
from launcher.errors import UserError
from launcher.train.names import normalize_accelerator

if TYPE_CHECKING:
    from launcher.loggers.base import Logger
    from launcher.train.datamodule import DataModule
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer


def resolve_device(
    accelerator: str, devices: int | str, num_nodes: int, env: ClusterEnvironment
) -> torch.device:
    """The device this process trains on; raises `UserError` for impossible requests."""
    accelerator = normalize_accelerator(accelerator)
    cuda = torch.cuda.is_available()
    if accelerator == "gpu" and not cuda:
        raise UserError(
            "accelerator='gpu' was requested but this machine has no CUDA GPU; "
            "use accelerator='cpu' (or --accelerator cpu)"
        )
    requested = None if devices in ("auto", None, -1) else int(devices)
    if requested is not None and requested < 1:
        raise UserError(f"devices must be >= 1 (or 'auto'), got {devices}")
    use_cuda = cuda and accelerator != "cpu"
    if use_cuda and requested and requested > torch.cuda.device_count():
        raise UserError(
            f"devices={requested} but only {torch.cuda.device_count()} GPU(s) are visible"
        )
    wanted_world = (requested or 1) * num_nodes
    if env.world_size == 1 and wanted_world > 1:
        raise UserError(
            f"this Trainer asks for {wanted_world} processes (devices x num_nodes) but runs as "
            "one; start it with `launch recipe.py --devices N --nodes M` so a process per "
            "device is launched"
        )
    if use_cuda:
        device = torch.device("cuda", env.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def resolve_loaders(
    trainer: Trainer,
    model: Module,
    datamodule: DataModule | None,
    train: Any,
    val: Any,
    stage: str = "fit",
) -> tuple[Any, Any]:
    """(train loader, eval loader) from explicit loaders, the datamodule, or the model."""
    # The recipe's own methods: typed as Any, since neither base class declares them.
    source: Any = datamodule if datamodule is not None else model
    if datamodule is not None:
        _prepare_data_once(trainer, datamodule)
        datamodule.setup(stage)
    elif hasattr(model, "prepare_data"):
        _prepare_data_once(trainer, model)
    eval_method = "val_dataloader" if stage in ("fit", "validate") else "test_dataloader"
    if stage == "fit" and train is None:
        if not hasattr(source, "train_dataloader"):
            where = type(source).__name__
            raise UserError(
                f"{where} has no train_dataloader(); define it or pass train_dataloaders"
            )
        train = source.train_dataloader()
    if val is None and hasattr(source, eval_method):
        val = getattr(source, eval_method)()
    elif val is None and hasattr(model, eval_method) and source is not model:
        val = getattr(model, eval_method)()
    return train, val


def _prepare_data_once(trainer: Trainer, holder: Any) -> None:
    """`prepare_data` once per node (local rank 0); everyone waits for it."""
    if trainer.local_rank == 0:
        holder.prepare_data()
    trainer.barrier()


def limit_batches(loader: Any, limit: int | float | None) -> int | float:
    """How many batches of `loader` to use: an int count, or a fraction of its length."""
    if loader is None:
        return 0
    length: int | float
    try:
        length = len(loader)
    except TypeError:  # iterable dataset of unknown length
        length = math.inf
    if limit is None:
        return length
    if isinstance(limit, bool) or limit < 0:
        raise UserError(f"batch limits must be a count >= 0 or a fraction in [0, 1], got {limit}")
    if isinstance(limit, float) and limit <= 1.0:
        return length if limit == 1.0 else max(1, int(length * limit)) if limit > 0 else 0
    return min(int(limit), length)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch to `device`."""
    if device.type == "cpu":
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    return batch


def build_loggers(
    trainer: Trainer, model: Module, arg: Logger | list[Logger] | bool | None
) -> list[Logger]:
    """Resolve Trainer(logger=...): True -> MLflow (default store), False -> none."""
    if trainer.fast_dev_run or arg is False or arg is None:
        return []
    if arg is True:
        from launcher.loggers.mlflow import MLflowLogger

        return [
            MLflowLogger(
                experiment_name=trainer.experiment_name or recipe_name(model),
                run_name=trainer.run_name or Path(trainer.run_dir or "").name,
                tracking_uri=trainer.tracking_uri,
                save_dir=trainer.default_root_dir,
                spool_dir=trainer.run_dir,
            )
        ]
    return list(arg) if isinstance(arg, (list, tuple)) else [arg]


def recipe_name(model: Module) -> str:
    """The stem of the file that defines the model's class (`digits` for recipes/digits.py)."""
    try:
        return Path(inspect.getfile(type(model))).stem
    except (TypeError, OSError):
        return type(model).__name__


def build_callbacks(
    trainer: Trainer, model: Module, user_callbacks: list[Callback]
) -> list[Callback]:
    """The user's callbacks, the model's `configure_callbacks()`, and a progress bar."""
    callbacks = list(user_callbacks)
    configured = model.configure_callbacks() if hasattr(model, "configure_callbacks") else []
    # As in Lightning, the model's callbacks replace user callbacks of the same type.
    kinds = {type(c) for c in configured}
    callbacks = [c for c in callbacks if type(c) not in kinds] + list(configured or [])
    if trainer.fast_dev_run or not trainer.enable_checkpointing:
        callbacks = [c for c in callbacks if type(c).__name__ != "ModelCheckpoint"]
    if trainer.enable_progress_bar and not any(
        type(c).__name__ == "ProgressBar" for c in callbacks
    ):
        from launcher.callbacks.progress import ProgressBar

        callbacks.append(ProgressBar())
    return callbacks


def collect_hooks(
    trainer: Trainer, callbacks: list[Callback], model: Module
) -> dict[str, list[Callable[..., Any]]]:
    """hook name -> callables taking the hook's own arguments, skipping base no-ops.

    The names are the `Callback` base's hooks. Callback hooks come with `(trainer, model)`
    already bound (`functools.partial`), so calling one costs no more than calling a model
    hook: some run every step.
    """
    hooks: dict[str, list[Callable[..., Any]]] = {}
    for name in HOOKS:
        for cb in callbacks:
            fn = getattr(cb, name, None)
            base = getattr(Callback, name, None)
            if fn is None or getattr(type(cb), name, None) is base:
                continue
            hooks.setdefault(name, []).append(functools.partial(fn, trainer, model))
        if getattr(type(model), name, None) is not None:  # Lightning-style model hooks
            hooks.setdefault(name, []).append(getattr(model, name))
    return hooks
