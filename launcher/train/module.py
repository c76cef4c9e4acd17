"""`Module`: the Lightning-style model a recipe defines.

class MNISTModel(Module):
    def __init__(self, hidden_dim: int = 64, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()          # self.hparams.lr == 1e-3
        self.net = nn.Linear(784, 10)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
import os
import warnings
from argparse import Namespace
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import yaml
from torch import nn

from launcher.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from launcher.loggers.base import Logger
    from launcher.train.trainer import Trainer

_T = TypeVar("_T")
_M = TypeVar("_M", bound="Module")


class AttributeDict(dict):
    """A dict whose keys are also attributes: `hparams.lr == hparams["lr"]`."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(f"no hyperparameter {key!r}; saved: {sorted(self)}") from exc

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


def capture_init_args(
    obj: Any, init_frame: FrameType, names: tuple[str, ...], ignore: list[str] | str | None
) -> dict[str, Any]:
    """The arguments `type(obj).__init__` received, read from its running frame."""
    params = inspect.signature(type(obj).__init__).parameters
    ignored = {ignore} if isinstance(ignore, str) else set(ignore or ())
    values = init_frame.f_locals
    captured: dict[str, Any] = {}
    for name, param in params.items():
        if name == "self" or param.kind == param.VAR_POSITIONAL:
            continue
        if param.kind == param.VAR_KEYWORD:
            captured.update(values.get(name, {}))
        elif name in values and name not in ignored and (not names or name in names):
            captured[name] = values[name]
    return captured


def collect_hparams(
    obj: Any, frame: FrameType, args: tuple[Any, ...], ignore: list[str] | str | None
) -> tuple[dict[str, Any], str | None]:
    """`save_hyperparameters(*args)`'s hyperparameters and their `hparams_name` (Lightning's).

    No args: every `__init__` argument ("kwargs"); names: those ("kwargs"); one dict or
    Namespace: its contents, named after the argument that passed it, if one did.
    """
    given = [arg for arg in args if not isinstance(arg, str)]
    if len(given) == 1:
        hp = vars(given[0]) if isinstance(given[0], Namespace) else given[0]
        if not isinstance(hp, Mapping):
            raise ValueError(f"Unsupported config type of {type(given[0])}.")
        init_args = capture_init_args(obj, frame, (), ignore)
        name = next((k for k, v in init_args.items() if v is given[0]), None)
        return dict(hp), name
    names = tuple(arg for arg in args if isinstance(arg, str))
    hparams = capture_init_args(obj, frame, names, ignore)
    return hparams, "kwargs" if hparams else None


def read_checkpoint(
    path: str | os.PathLike[str],
    map_location: Any,
    weights_only: bool | None,
    hparams_file: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    """A checkpoint file (ours of any format, or Lightning's) for `load_from_checkpoint`."""
    from launcher.train.checkpoint_store import safe_load
    from launcher.train.state import upgrade

    if weights_only is False:
        raise UserError(
            "load_from_checkpoint(weights_only=False) is not supported: checkpoints are always "
            "loaded with torch.load(weights_only=True), which never runs code from the file."
        )
    checkpoint = safe_load(path, map_location=map_location or _keep_available_device)
    if "format" in checkpoint:  # written here before format 2
        checkpoint = upgrade(checkpoint, str(path))
    if "state_dict" not in checkpoint:
        raise UserError(f"{path} holds no model weights (no 'state_dict' key)")
    if hparams_file is not None:
        if str(hparams_file).lower().endswith((".yaml", ".yml")):
            checkpoint["hyper_parameters"] = yaml.safe_load(Path(hparams_file).read_text()) or {}
        else:
            raise ValueError(".yml or .yaml is required for `hparams_file`")
    return checkpoint


def instantiate_from_checkpoint(
    cls: type[_T], checkpoint: dict[str, Any], hparams_key: str, overrides: dict[str, Any]
) -> _T:
    """`cls(**saved hyperparameters, **overrides)`, as Lightning's `_load_state` builds it.

    Arguments `__init__` does not take are dropped unless it has `**kwargs`; hyperparameters
    saved whole from one argument (`hparams_name`) are passed as that argument.
    """
    saved = dict(checkpoint.get(hparams_key) or {})
    saved.update(overrides)
    checkpoint[hparams_key] = saved
    params = inspect.signature(cls.__init__).parameters
    init_names = [n for n, p in params.items()
                  if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # fmt: skip
    name_key = "hparams_name" if hparams_key == "hyper_parameters" else "datamodule_hparams_name"
    name = checkpoint.get(name_key)
    kwargs = {name: saved} if name and name != "kwargs" and name in init_names else saved
    kwargs = {**kwargs, **overrides}
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in init_names}
    return cls(**kwargs)


def is_metric(value: Any) -> bool:
    """A torchmetrics-style object (`update`/`compute`/`reset`), without importing torchmetrics."""
    return all(callable(getattr(value, m, None)) for m in ("update", "compute", "reset"))


def check_loggable(name: str, value: Any) -> None:
    """Lightning's checks on a `self.log` value: a number, a one-element tensor or a metric."""
    if isinstance(value, Mapping):
        raise ValueError(
            f"`self.log({name}, {value})` was called, but nested dictionaries cannot be logged"
        )
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"`self.log({name}, {value})` was called, but the tensor must have a single "
                f"element. You can try doing `self.log({name}, {value}.mean())`"
            )
    elif not isinstance(value, numbers.Number) and not is_metric(value):
        raise ValueError(
            f"`self.log({name}, {value})` was called, but `{type(value).__name__}` values "
            "cannot be logged"
        )


def _keep_available_device(storage: Any, location: str) -> Any:
    """Lightning's default map_location: tensors stay where they were, CUDA ones without a GPU
    go to the CPU."""
    if location.startswith("cuda") and not torch.cuda.is_available():
        return storage.cpu()
    return None


def _map_tensors(
    data: Any, device: torch.device, fn: Callable[[torch.Tensor], torch.Tensor]
) -> Any:
    """`fn` applied to every tensor (numbers become tensors on `device`) of a nested batch."""
    if isinstance(data, torch.Tensor):
        return fn(data.to(device))
    if isinstance(data, (int, float, bool)):
        return fn(torch.tensor(data, device=device))
    if isinstance(data, Mapping):
        return type(data)({k: _map_tensors(v, device, fn) for k, v in data.items()})  # type: ignore[call-arg]
    if isinstance(data, (list, tuple)):
        items = [_map_tensors(v, device, fn) for v in data]
        return type(data)(*items) if hasattr(data, "_fields") else type(data)(items)
    return data


class Module(nn.Module):
    """Base class of recipe models. Override the hooks you need; the Trainer calls them."""

    _trainer: Trainer | None
    _hparams: AttributeDict

    def __init__(self) -> None:
        super().__init__()
        # Plain attributes (not submodules): the trainer is no part of the model's state.
        object.__setattr__(self, "_trainer", None)
        object.__setattr__(self, "_hparams", AttributeDict())

    # -- hyperparameters and checkpoints ----------------------------------------------------
    _hparams_name: str | None = None  # set by save_hyperparameters (a plain attribute)

    @property
    def hparams(self) -> AttributeDict:
        return self._hparams

    @property
    def hparams_name(self) -> str | None:
        """Which `__init__` argument(s) `hparams` came from: "kwargs" (each argument), the
        name of the one dict/Namespace argument saved whole, or None (Lightning's checkpoint
        key `hparams_name`, which `load_from_checkpoint` reads)."""
        return self._hparams_name

    def save_hyperparameters(
        self, *args: Any, ignore: list[str] | str | None = None, frame: FrameType | None = None
    ) -> None:
        """Capture the calling `__init__`'s arguments into `self.hparams`, as Lightning does.

        self.save_hyperparameters()                  # every argument
        self.save_hyperparameters("lr", "hidden")    # only these
        self.save_hyperparameters(ignore=["net"])    # all but these
        self.save_hyperparameters(config)            # the contents of one dict or Namespace
        """
        if frame is None:
            current = inspect.currentframe()
            frame = current.f_back if current is not None else None
        if frame is not None:
            hparams, name = collect_hparams(self, frame, args, ignore)
            self._hparams.update(hparams)
            object.__setattr__(self, "_hparams_name", name)

    @classmethod
    def load_from_checkpoint(
        cls: type[_M],
        checkpoint_path: str | os.PathLike[str],
        map_location: Any = None,
        hparams_file: str | os.PathLike[str] | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> _M:
        """A model built from a checkpoint's hyperparameters (`kwargs` win), with its weights.

        model = MNISTModel.load_from_checkpoint("best.ckpt")             # on the saved device
        model = MNISTModel.load_from_checkpoint("best.ckpt", map_location="cpu", lr=0.1)

        Reads Lightning's checkpoints and ours, always with `torch.load(weights_only=True)`.
        As in Lightning the model is not put in eval mode; `on_load_checkpoint(checkpoint)` is
        called before the weights are loaded (`strict`: every key must match, the default).
        """
        checkpoint = read_checkpoint(checkpoint_path, map_location, weights_only, hparams_file)
        model = instantiate_from_checkpoint(cls, checkpoint, "hyper_parameters", kwargs)
        strict = getattr(model, "strict_loading", True) if strict is None else strict
        on_load = getattr(model, "on_load_checkpoint", None)
        if callable(on_load):
            on_load(checkpoint)
        state_dict = checkpoint["state_dict"]
        keys = model.load_state_dict(state_dict, strict=strict)
        if not strict and (keys.missing_keys or keys.unexpected_keys):
            warnings.warn(
                f"{checkpoint_path}: missing keys {keys.missing_keys}, unexpected keys "
                f"{keys.unexpected_keys} (strict=False)",
                stacklevel=2,
            )
        device = next((t.device for t in state_dict.values() if isinstance(t, torch.Tensor)), None)
        if device is None:
            warnings.warn(f"The state dict in {checkpoint_path!r} contains no parameters.",
                          stacklevel=2)  # fmt: skip
            return model
        return model.to(device)

    # -- logging ------------------------------------------------------------------------
    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str | Callable[..., Any] = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any | None = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        metric_attribute: str | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """Record a metric, with `LightningModule.log`'s options (same names, same order).

        self.log("train_loss", loss, prog_bar=True)          # per step in training_step
        self.log("val_acc", self.val_acc)                    # a torchmetrics Metric: per epoch

        The step/epoch defaults depend on where it is called (`launcher.train.log_options`,
        `launcher.train.results`). `enable_graph` keeps the value's autograd graph;
        `sync_dist` reduces it over every rank (or `sync_dist_group`'s); `rank_zero_only`
        says only rank 0 calls it (never synced); `metric_attribute` names the attribute
        holding a logged `Metric`. Each stage has one dataloader here, so no
        `/dataloader_idx_N` suffix is ever added.
        """
        trainer = self._trainer
        if (  # the hot path, every step: a one-element tensor from a step method
            type(value) is torch.Tensor
            and trainer is not None
            and trainer.current_hook is None
            and metric_attribute is None
            and value.numel() == 1
            and (results := trainer.results) is not None
            and name in results.entries
            and trainer.stage != "predict"
        ):
            results.log(
                name, value, prog_bar, True if logger is None else logger, on_step, on_epoch,
                sync_dist=sync_dist, reduce_fx=reduce_fx, batch_size=batch_size,
                enable_graph=enable_graph, sync_dist_group=sync_dist_group,
                rank_zero_only=rank_zero_only,
            )  # fmt: skip
            return
        from launcher.train.log_options import EPOCH_END, log_levels

        check_loggable(name, value)
        if trainer is not None and trainer.stage == "predict":
            raise UserError(
                "You are trying to `self.log()` but the loop's result collection is not "
                "registered yet. This is most likely because you are trying to log in a "
                "`predict` hook, but it doesn't support logging"
            )
        if trainer is None:
            warnings.warn(
                "You are trying to `self.log()` but the `self.trainer` reference is not "
                "registered on the model yet. This is most likely because the model hasn't "
                "been passed to the `Trainer`",
                stacklevel=2,
            )
            return
        results = trainer.results
        hook = trainer.current_hook
        if results is None:
            raise UserError(
                f"You can't `self.log({name!r}, ...)` here ({hook or 'outside the loops'}): "
                "logging works in training_step, validation_step, test_step and the hooks "
                "that run inside those loops; log straight to the logger with "
                "`self.logger.log_metrics(...)` elsewhere."
            )
        on_step, on_epoch = log_levels(hook, name, on_step, on_epoch)
        if add_dataloader_idx and "/dataloader_idx_" in name:
            raise UserError(
                f"You called `self.log` with the key `{name}` but it should not contain "
                "information about `dataloader_idx` when `add_dataloader_idx=True`"
            )
        if metric_attribute is not None or is_metric(value):
            self._check_metric_attribute(name, value, metric_attribute)
        at_epoch_end = hook in EPOCH_END
        results.log(
            name, value, prog_bar, True if logger is None else logger, on_step, on_epoch,
            sync_dist=sync_dist, reduce_fx=reduce_fx, batch_size=batch_size,
            enable_graph=enable_graph, sync_dist_group=sync_dist_group,
            rank_zero_only=rank_zero_only, at_epoch_end=at_epoch_end,
        )  # fmt: skip
        if at_epoch_end:  # the epoch's value is final: monitors after this hook see it
            trainer.callback_metrics.update(results.with_plain_names(results.epoch_end_values))

    def _check_metric_attribute(self, name: str, value: Any, attribute: str | None) -> None:
        """A logged `Metric` must be an attribute of the model (its state is checkpointed)."""
        if attribute is not None:
            if getattr(self, attribute, None) is value:
                return
        else:
            ids = self.__dict__.get("_metric_ids")
            if ids is None or id(value) not in ids:  # first call, or a metric made since
                ids = {id(m): n for n, m in self.named_modules() if is_metric(m)}
                object.__setattr__(self, "_metric_ids", ids)  # a plain attribute: a cache
            if id(value) in ids:
                return
        metrics = [n for n, m in self.named_modules() if is_metric(m)]
        raise UserError(
            f"Could not find the `{type(self).__name__}` attribute for the `torchmetrics.Metric` "
            f"logged as {name!r}"
            + (f" (metric_attribute={attribute!r} is not it)" if attribute is not None else "")
            + ". Assign the metric to an attribute in `__init__` (`self.acc = Accuracy(...)`) and"
            f" log that, or pass `metric_attribute=` one of {metrics}."
        )

    def log_dict(
        self,
        dictionary: Mapping[str, Any],
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str | Callable[..., Any] = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any | None = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        rank_zero_only: bool = False,
    ) -> None:
        """`self.log` for every item of `dictionary` (a dict or a torchmetrics
        `MetricCollection`), with the same options."""
        items = dictionary.items()
        if is_metric(dictionary):  # a MetricCollection: its metrics, without the prefix copy
            items = dictionary.items(keep_base=False, copy_state=False)  # type: ignore[call-arg]
        for name, value in items:
            self.log(
                name, value, prog_bar, logger, on_step, on_epoch, reduce_fx, enable_graph,
                sync_dist, sync_dist_group, add_dataloader_idx, batch_size,
                rank_zero_only=rank_zero_only,
            )  # fmt: skip

    def print(self, *args: Any, **kwargs: Any) -> None:
        """`print` on global rank 0 only."""
        if self.global_rank == 0:
            print(*args, **kwargs)

    # -- what the trainer tells the model ------------------------------------------------
    @property
    def trainer(self) -> Trainer:
        if self._trainer is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a Trainer")
        return self._trainer

    @trainer.setter
    def trainer(self, trainer: Trainer | None) -> None:
        """The Trainer running this model sets itself here (`fit`/`validate`/`test`)."""
        object.__setattr__(self, "_trainer", trainer)  # a plain attribute, not a submodule

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    @property
    def device_mesh(self) -> Any:
        """strategy="fsdp": the `DeviceMesh` ("data_parallel", "tensor_parallel"), set before
        `configure_model()` runs, where Lightning's ModelParallelStrategy offers it:
        `fully_shard(block, mesh=self.device_mesh["data_parallel"])`. Otherwise None."""
        return self._trainer.dist.device_mesh if self._trainer else None

    @property
    def global_rank(self) -> int:
        return self._trainer.global_rank if self._trainer else 0

    @property
    def local_rank(self) -> int:
        return self._trainer.local_rank if self._trainer else 0

    @property
    def current_epoch(self) -> int:
        return self._trainer.current_epoch if self._trainer else 0

    @property
    def global_step(self) -> int:
        return self._trainer.global_step if self._trainer else 0

    # -- optimization (manual optimization: launcher/train/manual.py) ----------------------
    _automatic_optimization: bool = True
    _param_requires_grad_state: dict[torch.Tensor, bool] | None = None

    @property
    def automatic_optimization(self) -> bool:
        """False: `training_step` steps the optimizers itself (`self.optimizers()`,
        `self.manual_backward(loss)`, `opt.step()`); the Trainer touches no gradient."""
        return self._automatic_optimization

    @automatic_optimization.setter
    def automatic_optimization(self, automatic_optimization: bool) -> None:
        object.__setattr__(self, "_automatic_optimization", bool(automatic_optimization))

    def optimizers(self, use_pl_optimizer: bool = True) -> Any:
        """The optimizer (one) or the list of them, wrapped in `LightningOptimizer` unless
        `use_pl_optimizer=False`: `opt = self.optimizers(); opt.step()`."""
        trainer = self.trainer
        opts: list[Any] = (
            list(trainer.manual_optimization.lightning_optimizers)
            if use_pl_optimizer
            else list(trainer.optimizers)
        )
        return opts[0] if len(opts) == 1 else opts

    def lr_schedulers(self) -> Any:
        """The scheduler (one), the list of them, or None: `self.lr_schedulers().step()`
        (under manual optimization the Trainer steps none)."""
        schedulers = [config.scheduler for config in self.trainer.lr_scheduler_configs]
        if not schedulers:
            return None
        return schedulers[0] if len(schedulers) == 1 else schedulers

    def manual_backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """`loss.backward(*args, **kwargs)` under manual optimization, through the precision
        (fp16 loss scaling), the backward hooks and DDP's gradient averaging."""
        self.trainer.manual_optimization.backward(loss, *args, **kwargs)

    def toggle_optimizer(self, optimizer: Any) -> None:
        """Only `optimizer`'s parameters require grad until `untoggle_optimizer(optimizer)`
        (the other optimizers' parameters are set `requires_grad=False`; the state before
        is kept and restored)."""
        state: dict[torch.Tensor, bool] = {}
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                for param in group["params"]:
                    if param not in state:
                        state[param] = param.requires_grad
                        param.requires_grad = False
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.requires_grad = state[param]
        object.__setattr__(self, "_param_requires_grad_state", state)

    def untoggle_optimizer(self, optimizer: Any) -> None:
        """Restore the `requires_grad` that `toggle_optimizer(optimizer)` changed."""
        from launcher.train.manual import unwrap

        state = self._param_requires_grad_state or {}
        raw = unwrap(optimizer)
        for opt in self.trainer.optimizers:
            if opt is raw:
                continue
            for group in opt.param_groups:
                for param in group["params"]:
                    if param in state:
                        param.requires_grad = state[param]
        object.__setattr__(self, "_param_requires_grad_state", {})

    @contextlib.contextmanager
    def toggled_optimizer(self, optimizer: Any) -> Iterator[None]:
        """`toggle_optimizer` / `untoggle_optimizer` around a block."""
        self.toggle_optimizer(optimizer)
        try:
            yield
        finally:
            self.untoggle_optimizer(optimizer)

    def clip_gradients(
        self,
        optimizer: Any,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip `optimizer`'s gradients ("norm" or "value"; the Trainer's settings by default);
        under manual optimization call it between `manual_backward` and `opt.step()`."""
        self.trainer.manual_optimization.clip_gradients(
            optimizer, gradient_clip_val, gradient_clip_algorithm
        )

    @property
    def logger(self) -> Logger | None:
        """The trainer's first logger (None without a trainer or loggers), as Lightning's."""
        return self._trainer.logger if self._trainer else None

    @property
    def loggers(self) -> list[Logger]:
        """The trainer's loggers (`[]` without a trainer)."""
        return self._trainer.loggers if self._trainer else []

    # -- model utilities ----------------------------------------------------------------
    _example_input_array: Any = None

    @property
    def example_input_array(self) -> Any:
        """A sample input for `forward` (a tensor, a tuple of positional args or a dict of
        keyword args); `ModelSummary` runs it to show each layer's in/out sizes."""
        return self._example_input_array

    @example_input_array.setter
    def example_input_array(self, example: Any) -> None:
        object.__setattr__(self, "_example_input_array", example)

    def freeze(self) -> None:
        """Stop training every parameter (`requires_grad=False`) and switch to eval mode."""
        for param in self.parameters():
            param.requires_grad = False
        self.eval()

    def unfreeze(self) -> None:
        """Train every parameter again (`requires_grad=True`) and switch to train mode."""
        for param in self.parameters():
            param.requires_grad = True
        self.train()

    def all_gather(self, data: Any, group: Any = None, sync_grads: bool = False) -> Any:
        """Every rank's `data` (a tensor, number, or a list/tuple/dict of them), stacked.

        With N processes each tensor comes back with a leading dimension of size N (one row
        per global rank); with one process it comes back as it was. `sync_grads=True` lets
        gradients flow back through the gather.

            gathered = self.all_gather(preds)      # shape (world_size, *preds.shape)
        """
        gather = self.trainer.dist.all_gather
        return _map_tensors(data, self.device, lambda t: gather(t, group, sync_grads))

    # -- hooks the recipe overrides ---------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define training_step")

    def configure_optimizers(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define configure_optimizers")

    def configure_model(self) -> None:
        """Create layers here instead of in `__init__` to build them on the training device
        (called at the start of fit/validate/test/predict, after `setup`, before
        `configure_optimizers`; it may run more than once, so skip layers that exist)."""

    def predict_step(self, *args: Any, **kwargs: Any) -> Any:
        """One batch of `Trainer.predict`: `(batch, batch_idx, dataloader_idx=0)`; by default
        `self(batch)`, as Lightning's."""
        batch = kwargs.get("batch", args[0])
        return self(batch)

    def configure_callbacks(self) -> list[Any]:
        """Callbacks this model always wants (checkpointing, early stopping...)."""
        return []

    # -- Lightning's model hooks: no-ops the Trainer skips unless a subclass overrides them --
    def setup(self, stage: str) -> None:
        """Called on every process at the start of `stage` ("fit", "validate", "test")."""

    def teardown(self, stage: str) -> None:
        """Called on every process at the end of `stage`."""

    def on_fit_start(self) -> None: ...
    def on_fit_end(self) -> None: ...
    def on_train_start(self) -> None: ...
    def on_train_end(self) -> None: ...
    def on_validation_start(self) -> None: ...
    def on_validation_end(self) -> None: ...
    def on_test_start(self) -> None: ...
    def on_test_end(self) -> None: ...
    def on_predict_start(self) -> None: ...
    def on_predict_end(self) -> None: ...
    def on_train_epoch_start(self) -> None: ...
    def on_train_epoch_end(self) -> None: ...
    def on_validation_epoch_start(self) -> None: ...
    def on_validation_epoch_end(self) -> None: ...
    def on_test_epoch_start(self) -> None: ...
    def on_test_epoch_end(self) -> None: ...
    def on_predict_epoch_start(self) -> None: ...
    def on_predict_epoch_end(self) -> None: ...
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None: ...
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None: ...
    def on_validation_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_validation_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_test_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_predict_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_predict_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_before_zero_grad(self, optimizer: torch.optim.Optimizer) -> None: ...
    def on_before_backward(self, loss: torch.Tensor) -> None: ...
    def on_after_backward(self) -> None: ...
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None: ...

    def on_validation_model_zero_grad(self) -> None:
        """Before a validation inside `fit`: release the gradients (Lightning's default)."""
        self.zero_grad()

    def on_validation_model_eval(self) -> None:
        """Put the model in eval mode for validation (the Trainer restores the mode after)."""
        self.eval()

    def on_validation_model_train(self) -> None:
        """Override to choose the mode after validation; by default the previous one returns."""
        self.train()

    def on_test_model_eval(self) -> None:
        """Put the model in eval mode for testing."""
        self.eval()

    def on_test_model_train(self) -> None:
        """Override to choose the mode after testing; by default the previous one returns."""
        self.train()

    def on_predict_model_eval(self) -> None:
        """Put the model in eval mode for prediction."""
        self.eval()

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Change a batch before it moves to the device; returns the batch."""
        return batch

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Move a batch to `device` (tensors in lists, tuples and dicts by default)."""
        from launcher.train.resolve import move_to_device

        return move_to_device(batch, device)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Change a batch once it is on the device; returns the batch."""
        return batch
