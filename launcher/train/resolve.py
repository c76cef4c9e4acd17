"""What the Trainer resolves before its loops run: device, dataloaders, callbacks, loggers,
hooks, batch limits.

    device = resolve_device("auto", "auto", 1, env)
    hooks = collect_hooks(trainer, callbacks, model)     # {"on_train_batch_end": [fn, ...]}
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from launcher.callbacks.base import HOOKS, REMOVED_HOOKS, Callback
from launcher.cluster_env import ClusterEnvironment
from launcher.errors import UserError
from launcher.train.module import Module
from launcher.train.names import normalize_accelerator

if TYPE_CHECKING:
    from launcher.loggers.base import Logger
    from launcher.train.datamodule import DataModule
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


def set_cudnn_benchmark(benchmark: bool | None, deterministic: bool) -> None:
    """`Trainer(benchmark=...)`: sets `torch.backends.cudnn.benchmark` (None keeps the session's
    value, or False under `deterministic=True`), as Lightning does."""
    if deterministic:
        if benchmark is None:
            benchmark = False  # cudnn's autotuner would pick kernels non-deterministically
        elif benchmark:
            warnings.warn(
                "You passed deterministic=True and benchmark=True. Note that PyTorch ignores "
                "torch.backends.cudnn.deterministic=True when torch.backends.cudnn.benchmark=True.",
                UserWarning,
                stacklevel=3,
            )
    if benchmark is not None:
        torch.backends.cudnn.benchmark = benchmark


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
    eval_method = {"fit": "val_dataloader", "validate": "val_dataloader",
                   "test": "test_dataloader", "predict": "predict_dataloader"}[stage]  # fmt: skip
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


def dataloader_from(model: Module, datamodule: DataModule | None, method: str) -> Any:
    """A fresh loader from the datamodule's (else the model's) `method` ("train_dataloader",
    "val_dataloader"), None when neither defines it; for `reload_dataloaders_every_n_epochs`."""
    for source in (datamodule, model):
        if source is not None and hasattr(source, method):
            return getattr(source, method)()
    return None


def split_datamodule(
    stage: str, dataloaders: Any, datamodule: DataModule | None, val_dataloaders: Any = None
) -> tuple[Any, DataModule | None]:
    """(dataloaders, datamodule): a DataModule given where the dataloaders go is taken as the
    datamodule, as Lightning does (`fit(model, dm)`, `predict(model, dm)`)."""
    from launcher.train.datamodule import DataModule

    if isinstance(dataloaders, DataModule):
        dataloaders, datamodule = None, dataloaders
    if datamodule is not None and (dataloaders is not None or val_dataloaders is not None):
        if stage == "fit":
            raise UserError("You cannot pass `train_dataloader` or `val_dataloaders` to "
                            "`trainer.fit(datamodule=...)`")  # fmt: skip
        raise UserError(f"You cannot pass both `trainer.{stage}(dataloaders=..., datamodule=...)`")
    return dataloaders, datamodule


def prepare_data(
    trainer: Trainer, model: Module, datamodule: DataModule | None, stage: str
) -> None:
    """Lightning's order before the setup hooks: `prepare_data` once per node, then
    `datamodule.setup(stage)` on every process."""
    if datamodule is not None:
        _prepare_data_once(trainer, datamodule)
        datamodule.setup(stage)
    elif hasattr(model, "prepare_data"):
        _prepare_data_once(trainer, model)


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
        from launcher.loggers.spool import recorded_run

        experiment = trainer.experiment_name or recipe_name(model)
        # A relaunch (`--resume auto`) killed before its first checkpoint continues the run
        # it had opened; a checkpoint, when there is one, says the same.
        run_dir = trainer.run_dir
        relaunch = run_dir is not None and trainer.launch_settings.get("resume") == "auto"
        return [
            MLflowLogger(
                experiment_name=experiment,
                run_name=trainer.run_name or Path(trainer.run_dir or "").name,
                tracking_uri=trainer.tracking_uri,
                save_dir=trainer.default_root_dir,
                spool_dir=trainer.run_dir,
                run_id=recorded_run(run_dir, experiment) if run_dir and relaunch else None,
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
    from launcher.callbacks.progress import ProgressBar

    # TQDMProgressBar / RichProgressBar are ProgressBars too: one bar, the user's.
    if trainer.enable_progress_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(ProgressBar())
    from launcher.callbacks.model_checkpoint import ModelCheckpoint
    from launcher.callbacks.model_summary import ModelSummary

    if trainer.enable_model_summary and not any(isinstance(c, ModelSummary) for c in callbacks):
        callbacks.append(ModelSummary())
    # As Lightning does: checkpointing callbacks last, so they see what the others did.
    return sorted(callbacks, key=lambda c: isinstance(c, ModelCheckpoint))


def collect_hooks(
    trainer: Trainer, callbacks: list[Callback], model: Module
) -> dict[str, list[Callable[..., Any]]]:
    """hook name -> callables taking the hook's own arguments, skipping base no-ops.

    The names are the `Callback` base's hooks; callbacks come first, then the model (when
    Lightning's `LightningModule` has that hook), except `on_train_epoch_end`, where
    checkpointing and early stopping come after the model, as in Lightning, so they see
    what the model logged. Callback hooks come with `(trainer, model)` already bound
    (`functools.partial`), so calling one costs no more than calling a model hook: some run
    every step.
    """
    from launcher.callbacks.early_stopping import EarlyStopping
    from launcher.callbacks.model_checkpoint import ModelCheckpoint

    hooks: dict[str, list[Callable[..., Any]]] = {}
    for name in HOOKS:
        late: list[Callable[..., Any]] = []
        for cb in callbacks:
            fn = getattr(cb, name, None)
            # The base's no-op, bound; a hook set on the instance (LambdaCallback) counts.
            if fn is None or getattr(fn, "__func__", None) is getattr(Callback, name, None):
                continue
            bound = functools.partial(fn, trainer, model)
            monitoring = isinstance(cb, (ModelCheckpoint, EarlyStopping))
            if name == "on_train_epoch_end" and monitoring:
                late.append(bound)
            else:
                hooks.setdefault(name, []).append(bound)
        if name in MODULE_HOOKS and overrides(model, name):
            hooks.setdefault(name, []).append(getattr(model, name))
        if late:
            hooks.setdefault(name, []).extend(late)
    return hooks


def overrides(model: Module, name: str) -> bool:
    """Whether `model`'s class defines hook `name` itself (not the `Module` no-op)."""
    fn = getattr(type(model), name, None)
    return fn is not None and fn is not getattr(Module, name, None)


# The hooks of Lightning's LightningModule among the Callback's (the model's own, such as
# on_validation_model_eval, the loops call directly); checkpoint hooks live elsewhere.
MODULE_HOOKS = frozenset(
    {name for name in HOOKS if name in vars(Module)} | {"on_save_checkpoint", "on_load_checkpoint"}
)
_WARNED: set[tuple[type, str]] = set()


def warn_unknown_hooks(callbacks: list[Any], model: Module) -> None:
    """Warn once per class about methods that look like hooks but that Lightning never calls.

    A 1.x hook removed in 2.0 (`on_epoch_end`) names its replacement; any other `on_*` name
    that no Callback/LightningModule has (`on_train_epoch_ends`) gets a did-you-mean.
    """
    known_cb = {n for n in dir(Callback) if not n.startswith("_")}
    known_model = {n for n in dir(Module) if not n.startswith("_")} | MODULE_HOOKS
    for obj, known, stop, kind in [(cb, known_cb, Callback, "callback") for cb in callbacks] + [
        (model, known_model, Module, "model")
    ]:
        for cls in type(obj).__mro__:
            if cls in (stop, object) or cls.__module__.startswith(("launcher.", "torch.")):
                continue
            for name, value in vars(cls).items():
                if not inspect.isfunction(value) or name in known or (cls, name) in _WARNED:
                    continue
                hint = _unknown_hook_hint(name, known)
                if hint:
                    _WARNED.add((cls, name))
                    warnings.warn(
                        f"{kind} {cls.__qualname__} defines {name}(), which Lightning 2.x never "
                        f"calls (nor does this Trainer): {hint}",
                        UserWarning,
                        stacklevel=3,
                    )


def _unknown_hook_hint(name: str, known: set[str]) -> str:
    if name in REMOVED_HOOKS:
        return f"it was removed in Lightning 2.0; use {REMOVED_HOOKS[name]}"
    hooks = sorted(n for n in known if n.startswith("on_") or n in ("setup", "teardown"))
    close = difflib.get_close_matches(name, hooks, n=1, cutoff=0.85)
    if close:
        return f"did you mean {close[0]}?"
    if name.startswith("on_"):
        return "no hook has this name"
    return ""
