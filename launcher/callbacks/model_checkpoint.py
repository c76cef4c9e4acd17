"""`ModelCheckpoint`: save the best k checkpoints by a monitored metric, Lightning-style.

    from launcher.callbacks import ModelCheckpoint

    ModelCheckpoint(monitor="val_acc", mode="max", filename="mnist-best-{epoch:02d}-{val_acc:.2f}")
    # -> <run_dir>/checkpoints/mnist-best-epoch=03-val_acc=0.97.ckpt
    ModelCheckpoint(every_n_train_steps=500, save_last=True)  # step-based, plus last.ckpt

Every rank calls `trainer.save_checkpoint(path)` (the trainer writes on rank 0). Which file to
write and which to delete is decided on rank 0 and broadcast, so all ranks agree even when a
monitored metric was not synced across ranks.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import sys
import warnings
from typing import TYPE_CHECKING, Any

from launcher.callbacks.base import Callback
from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer

_MODES = ("min", "max")


def _as_number(value: Any) -> int | float:
    """A logged value (tensor, numpy scalar, Python number) as a Python int or float."""
    if hasattr(value, "item"):
        value = value.item()
    return value if isinstance(value, int) and not isinstance(value, bool) else float(value)


def generate_state_key(class_name: str, **settings: Any) -> str:
    """Lightning's `Callback._generate_state_key`: the class name, then the settings' repr.

    generate_state_key("EarlyStopping", monitor="val_loss", mode="min")
    # -> "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"
    """
    return f"{class_name}{settings!r}"


def resolve_ckpt_dir(trainer: Trainer) -> str:
    """Where `ModelCheckpoint(dirpath=None)` saves: Lightning's `__resolve_ckpt_dir`.

    With loggers given to the Trainer: `<first logger's save_dir or default_root_dir>/<name>/
    <version, or version_N>/checkpoints`. Otherwise, and with `logger=True` (launcher's own
    MLflow run, whose run directory plays `lightning_logs/version_N`'s part), the run
    directory's `checkpoints`. Call on every rank (rank 0, which holds the loggers, decides).
    """
    path = trainer.checkpoint_dir
    if trainer.loggers and not trainer.default_logger:
        first = trainer.loggers[0]
        save_dir = first.save_dir if first.save_dir is not None else trainer.default_root_dir
        version = first.version
        version = version if isinstance(version, str) else f"version_{version}"
        path = os.path.join(save_dir, str(first.name), version, "checkpoints")
    return str(trainer.broadcast(path))


def missing_metric_error(owner: str, monitor: str, available: Any) -> UserError:
    """The error raised when `owner` monitors a metric nobody logged (shared with EarlyStopping)."""
    names = sorted(name for name in available if name not in ("epoch", "step"))
    logged = ", ".join(names) if names else "(none)"
    return UserError(
        f'{owner}(monitor="{monitor}") found no metric {monitor!r}; logged metrics: {logged}. '
        f'Log it with self.log("{monitor}", ...) in validation_step or change monitor.'
    )


def validation_skipped_this_epoch(trainer: Trainer) -> bool:
    """True when the run validates, but not after this epoch (check_val_every_n_epoch > 1)."""
    every = trainer.check_val_every_n_epoch
    validates = bool(trainer.num_val_batches)
    # None: validation every N batches across epochs, which any epoch may hold.
    return validates and every is not None and (trainer.current_epoch + 1) % every != 0


class ModelCheckpoint(Callback):
    """Save checkpoints every epoch (or every n train steps), keeping the `save_top_k` best.

    `filename` is a template: `{epoch}`, `{step}` and logged metric names in braces, with
    format specs (`"{epoch:02d}-{val_acc:.2f}"`); with `auto_insert_metric_name=True` each field
    renders as `name=value`. Without `monitor`, `save_top_k=1` keeps only the latest checkpoint
    and `save_top_k=-1` keeps all. `save_last=True` also writes `last.ckpt` on every save.
    """

    CHECKPOINT_JOIN_CHAR = "-"
    CHECKPOINT_NAME_LAST = "last"
    FILE_EXTENSION = ".ckpt"
    STARTING_VERSION = 1

    def __init__(
        self,
        dirpath: str | os.PathLike | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        mode: str = "min",
        save_top_k: int = 1,
        save_last: bool | None = None,
        every_n_epochs: int | None = None,
        every_n_train_steps: int | None = None,
        save_weights_only: bool = False,
        auto_insert_metric_name: bool = True,
        verbose: bool = False,
        save_on_train_epoch_end: bool | None = None,
    ) -> None:
        if mode not in _MODES:
            raise UserError(f"ModelCheckpoint(mode={mode!r}) is not valid; use one of: min, max.")
        if save_top_k < -1:
            raise UserError(
                f"ModelCheckpoint(save_top_k={save_top_k}) must be >= -1 (-1 keeps all)."
            )
        if monitor is None and save_top_k not in (-1, 0, 1):
            raise UserError(
                f"ModelCheckpoint(save_top_k={save_top_k}) needs a monitor to rank checkpoints; "
                "set monitor=... or use save_top_k in (-1, 0, 1)."
            )
        for name, value in (
            ("every_n_epochs", every_n_epochs),
            ("every_n_train_steps", every_n_train_steps),
        ):
            if value is not None and value < 0:
                raise UserError(f"ModelCheckpoint({name}={value}) must be >= 0.")
        if every_n_epochs and every_n_train_steps:
            raise UserError(
                "ModelCheckpoint: every_n_epochs and every_n_train_steps are mutually exclusive; "
                "set only one of them."
            )
        self.dirpath = os.fspath(dirpath) if dirpath is not None else None
        self.filename = filename
        self.monitor = monitor
        self.mode = mode
        self.save_top_k = save_top_k
        self.save_last = save_last
        self.every_n_train_steps = every_n_train_steps or 0
        # Lightning's default: once per epoch, unless saving by steps.
        default_epochs = 0 if self.every_n_train_steps else 1
        self.every_n_epochs = default_epochs if every_n_epochs is None else every_n_epochs
        self.save_weights_only = save_weights_only
        self.auto_insert_metric_name = auto_insert_metric_name
        self.verbose = verbose
        self.save_on_train_epoch_end = save_on_train_epoch_end

        self.best_k_models: dict[str, float] = {}
        self.kth_best_model_path = ""
        self.kth_value: float | None = None
        self.best_model_path = ""
        self.best_model_score: float | None = None
        self.last_model_path = ""
        self._last_global_step_saved = -1
        self._loaded_dirpath: str | None = None
        self._warned_missing_on_step = False

    @property
    def state_key(self) -> str:
        # Several checkpoint callbacks may coexist; their states must not collide. Lightning's
        # exact key, so the states of a Lightning checkpoint and ours line up.
        return self._generate_state_key(
            monitor=self.monitor,
            mode=self.mode,
            every_n_train_steps=self.every_n_train_steps,
            every_n_epochs=self.every_n_epochs,
            train_time_interval=None,
        )

    def find_last_checkpoints(self) -> set[str]:
        """The `last*.ckpt` files in `dirpath` (what `fit(ckpt_path="last")` falls back to)."""
        if not self.dirpath or not os.path.isdir(self.dirpath):
            return set()
        name, ext = self.CHECKPOINT_NAME_LAST, self.FILE_EXTENSION
        return {os.path.join(self.dirpath, f) for f in os.listdir(self.dirpath)
                if f.startswith(name) and f.endswith(ext)}  # fmt: skip

    # ---------------------------------------------------------------- hooks
    def setup(self, trainer: Trainer, module: Module, stage: str) -> None:
        if stage == "fit" and self.dirpath is None:
            return  # on_fit_start: after a resume gave the loggers back their versions
        self._resolve_dirpath(trainer)

    def on_fit_start(self, trainer: Trainer, module: Module) -> None:
        self._resolve_dirpath(trainer)

    def _resolve_dirpath(self, trainer: Trainer) -> None:
        if self.dirpath is None:
            self.dirpath = resolve_ckpt_dir(trainer)
        self._forget_other_directory()

    def on_train_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self.every_n_train_steps
        if n < 1 or trainer.global_step % n != 0 or self._should_skip(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor is not None and self.monitor not in candidates:
            # Validation may not have run yet in the first epoch: wait for it, say so once.
            if not self._warned_missing_on_step and trainer.is_global_zero:
                print(
                    f"ModelCheckpoint: {self.monitor!r} not logged yet at step "
                    f"{trainer.global_step}; skipping step checkpoints until it is.",
                    file=sys.stderr,
                )
            self._warned_missing_on_step = True
            return
        self._save(trainer, candidates)

    def on_train_epoch_end(self, trainer: Trainer, module: Module) -> None:
        if not self._saves_on_train_epoch_end(trainer):
            return
        self._save_for_epoch(trainer)

    def on_validation_end(self, trainer: Trainer, module: Module) -> None:
        # Validation mid-epoch or every n epochs: save after it, as Lightning does.
        if trainer.sanity_checking or self._saves_on_train_epoch_end(trainer):
            return
        self._save_for_epoch(trainer)

    def _saves_on_train_epoch_end(self, trainer: Trainer) -> bool:
        """Lightning's rule: at train epoch end unless validation runs other than once per epoch."""
        if self.save_on_train_epoch_end is not None:
            return self.save_on_train_epoch_end
        if trainer.check_val_every_n_epoch != 1:
            return False
        return not trainer.num_val_batches or trainer.val_check_interval == 1.0

    def _save_for_epoch(self, trainer: Trainer) -> None:
        if self._should_skip(trainer) or validation_skipped_this_epoch(trainer):
            return
        n = self.every_n_epochs
        on_schedule = n >= 1 and (trainer.current_epoch + 1) % n == 0
        if not on_schedule and not self.save_last:
            return
        candidates = self._monitor_candidates(trainer)
        if on_schedule and self.monitor is not None and self.monitor not in candidates:
            error = missing_metric_error("ModelCheckpoint", self.monitor, candidates)
            if trainer.loop.last_val_batch >= 0:  # validation ran and did not log it
                raise error
            # As Lightning: before any validation (a run stopped by max_steps in its first
            # epoch), say so once and save nothing rather than fail.
            if not self._warned_missing_on_step and trainer.is_global_zero:
                warnings.warn(f"{error} (no validation has run yet: nothing saved)", stacklevel=2)
            self._warned_missing_on_step = True
            return
        self._save(trainer, candidates, top_k=on_schedule)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "dirpath": self.dirpath,
            "best_k_models": dict(self.best_k_models),
            "kth_best_model_path": self.kth_best_model_path,
            "kth_value": self.kth_value,
            "best_model_path": self.best_model_path,
            "best_model_score": self.best_model_score,
            "last_model_path": self.last_model_path,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        self._loaded_dirpath = state.pop("dirpath", None)
        self.best_k_models = dict(state.pop("best_k_models", {}))
        self.kth_best_model_path = state.pop("kth_best_model_path", "")
        self.kth_value = state.pop("kth_value", None)
        self.best_model_path = state.pop("best_model_path", "")
        self.best_model_score = state.pop("best_model_score", None)
        self.last_model_path = state.pop("last_model_path", "")
        # monitor/mode are stored to describe the state; the constructor's values win.
        state.pop("monitor", None)
        state.pop("mode", None)
        if state:
            raise KeyError(f"ModelCheckpoint state has unknown keys: {sorted(state)}")
        self._forget_other_directory()

    def _forget_other_directory(self) -> None:
        """After resuming into a different dirpath, don't manage (or delete) the old files."""
        if self.dirpath is None or self._loaded_dirpath is None:
            return
        if os.path.abspath(self._loaded_dirpath) != os.path.abspath(self.dirpath):
            self.best_k_models = {}
            self.kth_best_model_path, self.kth_value = "", None
            self.last_model_path = ""
        self._loaded_dirpath = None

    # ---------------------------------------------------------------- naming
    def format_checkpoint_name(
        self, metrics: dict[str, Any], filename: str | None = None, ver: int | None = None
    ) -> str:
        """The checkpoint path for `metrics` (names -> numbers/tensors), e.g. in tests:

        ModelCheckpoint(dirpath="ck", filename="{epoch:02d}").format_checkpoint_name({"epoch": 3})
        -> "ck/epoch=03.ckpt"
        """
        template = filename if filename is not None else (self.filename or "{epoch}-{step}")
        name = self._render(template, metrics)
        if ver is not None:
            name = f"{name}{self.CHECKPOINT_JOIN_CHAR}v{ver}"
        return os.path.join(self.dirpath or "", name + self.FILE_EXTENSION)

    def _render(self, template: str, metrics: dict[str, Any]) -> str:
        # Longest names first so "{val" never clobbers "{val_acc".
        groups = sorted(set(re.findall(r"(\{.*?)[:\}]", template)), key=len, reverse=True)
        values: dict[str, int | float] = {}
        for group in groups:
            name = group[1:]
            # Index syntax so that metric names may hold "/" or ".".
            replacement = "{0[" + name + "]"
            if self.auto_insert_metric_name:
                replacement = name + "=" + replacement
            template = template.replace(group, replacement)
            # Lightning renders a never-logged field as 0.
            values[name] = _as_number(metrics[name]) if name in metrics else 0
        return template.format(values)

    def _versioned_path(
        self, candidates: dict[str, Any], replaceable: str, filename: str | None = None
    ) -> str:
        """A path not already used by another checkpoint (adds -v1, -v2... like Lightning)."""
        path = self.format_checkpoint_name(candidates, filename)
        version = self.STARTING_VERSION
        while path != replaceable and (os.path.exists(path) or path in self.best_k_models):
            path = self.format_checkpoint_name(candidates, filename, ver=version)
            version += 1
        return path

    # ---------------------------------------------------------------- saving
    def _should_skip(self, trainer: Trainer) -> bool:
        return (
            bool(trainer.fast_dev_run)
            or trainer.stage != "fit"
            or self._last_global_step_saved == trainer.global_step
        )

    def _monitor_candidates(self, trainer: Trainer) -> dict[str, Any]:
        candidates: dict[str, Any] = dict(trainer.callback_metrics)
        candidates.setdefault("epoch", trainer.current_epoch)
        candidates.setdefault("step", trainer.global_step)
        return candidates

    def _save(self, trainer: Trainer, candidates: dict[str, Any], top_k: bool = True) -> None:
        # Rank 0 decides; everyone follows, so save_checkpoint is called on all ranks or none.
        plan = self._plan(candidates, top_k) if trainer.is_global_zero else None
        plan = trainer.broadcast(plan)
        self._apply_plan_state(plan)
        files = trainer.checkpoint_files  # written off the training thread, in order
        for path in plan["save"]:
            trainer.save_checkpoint(path, weights_only=self.save_weights_only, background=True)
            if trainer.is_global_zero:  # Lightning: loggers that upload checkpoints hear of it
                for logger in trainer.loggers:
                    if logger.reads_checkpoint_files:
                        files.wait()
                    logger.after_save_checkpoint(self)
        self._last_global_step_saved = trainer.global_step
        if trainer.is_global_zero:
            for path in plan["delete"]:  # after the new files, as Lightning orders them
                files.run(functools.partial(delete_checkpoint, path))
            if self.verbose and plan["save"]:
                print(f"ModelCheckpoint: saved {', '.join(plan['save'])}", file=sys.stderr)

    def _plan(self, candidates: dict[str, Any], top_k: bool) -> dict[str, Any]:
        """What to save and delete, plus the resulting bookkeeping (decided on rank 0)."""
        saves: list[str] = []
        deletes: list[str] = []
        if top_k and self.save_top_k != 0:
            if self.monitor is None:
                self._plan_latest(candidates, saves, deletes)
            else:
                self._plan_top_k(self.monitor, candidates, saves, deletes)
        if self.save_last:
            last = self._versioned_path(candidates, self.last_model_path, self.CHECKPOINT_NAME_LAST)
            if self.last_model_path and self.last_model_path != last:
                deletes.append(self.last_model_path)
            self.last_model_path = last
            saves.append(last)
        # A file that is both replaced and rewritten must not be deleted after the write.
        deletes = [p for p in deletes if p not in saves and p not in self.best_k_models]
        return {"save": saves, "delete": deletes, "state": self.state_dict()}

    def _plan_latest(
        self, candidates: dict[str, Any], saves: list[str], deletes: list[str]
    ) -> None:
        previous = self.best_model_path
        replaceable = previous if self.save_top_k == 1 else ""
        path = self._versioned_path(candidates, replaceable)
        if self.save_top_k == 1:
            if previous and previous != path:
                deletes.append(previous)
            self.best_k_models = {}
        self.best_k_models[path] = math.nan  # no monitor: no score
        self.best_model_path = path
        saves.append(path)

    def _plan_top_k(
        self, monitor: str, candidates: dict[str, Any], saves: list[str], deletes: list[str]
    ) -> None:
        current = float(_as_number(candidates[monitor]))
        if math.isnan(current):
            # A NaN never ranks among the best.
            current = math.inf if self.mode == "min" else -math.inf
        k = len(self.best_k_models) + 1 if self.save_top_k == -1 else self.save_top_k
        if len(self.best_k_models) >= k and not self._better(current, self.kth_value):
            return
        replaceable = ""
        if len(self.best_k_models) >= k:
            replaceable = self.kth_best_model_path
            self.best_k_models.pop(replaceable)
        path = self._versioned_path(candidates, replaceable)
        self.best_k_models[path] = current
        worst = max if self.mode == "min" else min
        best = min if self.mode == "min" else max
        self.kth_best_model_path = worst(self.best_k_models, key=self.best_k_models.__getitem__)
        self.kth_value = self.best_k_models[self.kth_best_model_path]
        self.best_model_path = best(self.best_k_models, key=self.best_k_models.__getitem__)
        self.best_model_score = self.best_k_models[self.best_model_path]
        saves.append(path)
        if replaceable and replaceable != path:
            deletes.append(replaceable)

    def _better(self, current: float, reference: float | None) -> bool:
        if reference is None:
            return True
        return current < reference if self.mode == "min" else current > reference

    def _apply_plan_state(self, plan: dict[str, Any]) -> None:
        state = plan["state"]
        self.best_k_models = dict(state["best_k_models"])
        self.kth_best_model_path = state["kth_best_model_path"]
        self.kth_value = state["kth_value"]
        self.best_model_path = state["best_model_path"]
        self.best_model_score = state["best_model_score"]
        self.last_model_path = state["last_model_path"]


def delete_checkpoint(path: str) -> None:
    """Remove a checkpoint file (or a checkpoint directory) that is no longer kept."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
