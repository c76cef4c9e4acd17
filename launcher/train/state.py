"""The Trainer's checkpoint: a mapping name -> part, each part saving and restoring itself.

    parts = checkpoint_parts(trainer)        # {"state_dict": ..., "optimizer_states": ...}
    state = build_state(trainer)             # collective: every rank calls it
    save_resume_checkpoint(trainer)          # rolling, crash-safe, in RUN_DIR/checkpoints/resume
    restore(trainer, "last")                 # exact resume; unknown keys are an error

A part is anything with `state_dict()` / `load_state_dict(state)` (`Stateful`), as in
torchtitan's `CheckpointManager(states=...)` and Fabric's `save(path, state)`. Adding one (a
sharded model state, a prediction loop) is one entry in `checkpoint_parts`. A part that needs
every rank to take part in saving (a collective) says so with `collective = True`: it is saved
on every rank, the others only on rank 0. Per-rank parts (RNG states, running epoch sums,
metric-object states) are gathered from every rank so each rank gets its own back on resume.

The keys are Lightning's (`state_dict`, `hyper_parameters`, `epoch`, `global_step`,
`optimizer_states`, `lr_schedulers`, `callbacks`, `loops`, `pytorch-lightning_version`), so
Lightning's `load_from_checkpoint` and code reading `checkpoint["state_dict"]` work; what exact
resume needs beyond them is under `launcher_*` keys. Format 1 files (`model`, `loop`...) are
converted on load (`upgrade`). Keys a user's `on_save_checkpoint` adds are listed under
`launcher_user_keys` and come back in `on_load_checkpoint` instead of failing the resume.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from launcher.callbacks.model_checkpoint import ModelCheckpoint, generate_state_key
from launcher.errors import UserError
from launcher.train import fsdp, reshard
from launcher.train.checkpoint_store import CheckpointManager, atomic_torch_save, safe_load
from launcher.train.input_checks import check_same_model
from launcher.train.seed import load_rng_state, rng_state
from launcher.train.sharded_checkpoint import SHARDED_KEYS, ModelShards, OptimizerShards, ShardedRef

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer

FORMAT_VERSION = 2
FORMAT_KEY = "launcher_format"
USER_KEYS = "launcher_user_keys"  # keys the hooks' on_save_checkpoint added, handed back on load
# Lightning reads its migrations from this key; the layout written here is that of 2.x.
LIGHTNING_VERSION_KEY, LIGHTNING_VERSION = "pytorch-lightning_version", "2.6.0"
# Parts a checkpoint may lack: records for people and tools, or checks that older files skip.
_OPTIONAL = frozenset({"hyper_parameters", "hparams_name", "launcher_launch",
                       "datamodule_hyper_parameters", "datamodule_hparams_name"})  # fmt: skip
# What `save_checkpoint(weights_only=True)` keeps (Lightning's weights-only keys, less loops).
_WEIGHTS_ONLY = (FORMAT_KEY, "state_dict", "hyper_parameters", "hparams_name", "epoch",
                 "global_step", LIGHTNING_VERSION_KEY, "datamodule_hyper_parameters",
                 "datamodule_hparams_name", USER_KEYS)  # fmt: skip
# Format 1's key -> format 2's (the loop position moved under loops["fit_loop"]).
_FORMAT_1_KEYS = {
    "model": "state_dict", "hparams": "hyper_parameters", "optimizers": "optimizer_states",
    "precision": "launcher_precision", "sampler": "launcher_sampler",
    "per_rank": "launcher_per_rank", "loggers": "launcher_loggers", "launch": "launcher_launch",
}  # fmt: skip


class Stateful(Protocol):
    """What a checkpoint part provides (torch modules, optimizers and schedulers do)."""

    def state_dict(self) -> Any: ...
    def load_state_dict(self, state: Any, /) -> Any: ...


@dataclass
class FunctionPart:
    """A part made of two functions: `save() -> state` and `load(state)`."""

    save: Callable[[], Any]
    load: Callable[[Any], None]
    collective: bool = False
    optional: bool = False  # a checkpoint may lack it (written before the part existed)

    def state_dict(self) -> Any:
        return self.save()

    def load_state_dict(self, state: Any, /) -> None:
        self.load(state)


class PartList:
    """Several parts of one kind (optimizers, schedulers) saved as a list, in order."""

    def __init__(self, parts: list[Any], what: str) -> None:
        self.parts, self.what = parts, what

    def state_dict(self) -> list[Any]:
        return [part.state_dict() for part in self.parts]

    def load_state_dict(self, states: list[Any], /) -> None:
        if len(states) != len(self.parts):
            raise UserError(
                f"the checkpoint holds {len(states)} {self.what}, this run has "
                f"{len(self.parts)}; resume with the configure_optimizers() that wrote it"
            )
        for part, state in zip(self.parts, states, strict=True):
            part.load_state_dict(state)


class NamedParts:
    """Parts saved as a dict by name (callbacks and loggers by `state_key`).

    A saved name this run does not have is an error (its state would be lost silently),
    unless that state is empty or `missing_ok` (loggers: a resumed run may log elsewhere).
    """

    def __init__(self, parts: dict[str, Any], what: str, source: str,
                 missing_ok: bool = False) -> None:  # fmt: skip
        self.parts, self.what, self.source, self.missing_ok = parts, what, source, missing_ok

    def state_dict(self) -> dict[str, Any]:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, states: dict[str, Any], /) -> None:
        for name, state in states.items():
            part = self.parts.get(name)
            if part is None:
                if state and not self.missing_ok:
                    raise UserError(
                        f"checkpoint {self.source} holds state for {self.what} {name!r}, "
                        f"which this run does not have; present: {sorted(self.parts)}"
                    )
                continue
            part.load_state_dict(state)


class PerRankParts:
    """Parts every rank holds its own value of; saved as a list indexed by global rank."""

    collective = True

    def __init__(self, parts: dict[str, Stateful], trainer: Trainer, source: str) -> None:
        self.parts, self.trainer, self.source = parts, trainer, source

    def state_dict(self) -> list[Any]:
        mine = {name: part.state_dict() for name, part in self.parts.items()}
        return self.trainer.dist.all_gather_object(mine)

    def load_state_dict(self, states: list[Any], /) -> None:
        # At another world size (train/reshard.py) the ranks both sizes share keep theirs.
        rank = self.trainer.global_rank
        if rank < len(states):
            load_parts(self.parts, dict(states[rank]), self.source)


def checkpoint_parts(
    trainer: Trainer, source: str = "", sharded: bool = False
) -> dict[str, Stateful]:
    """Every part of the trainer's checkpoint, by its key in the file.

    `source` names the checkpoint being loaded in error messages. `sharded`: the model and
    optimizers as every rank's own shards (a sharded checkpoint, `sharded_checkpoint.py`).
    """
    module, loop = trainer.module, trainer.loop

    def load_model(state: dict[str, Any]) -> None:
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise UserError(
                f"the model no longer matches checkpoint {source} (its shape changed):\n{exc}\n"
                "Resume with the original hyperparameters, or start fresh with --no-resume."
            ) from exc

    def check_launch(saved: dict[str, Any]) -> None:
        for key, now in compat_settings(trainer).items():
            if key in saved and saved[key] != now:
                raise UserError(
                    f"cannot resume {source}: {key} changed from {saved[key]} to {now}. "
                    f"Resume with {key}={saved[key]}, or start a new run with --no-resume."
                )

    per_rank: dict[str, Stateful] = {
        "rng": FunctionPart(rng_state, load_rng_state),
        "results": trainer.train_results,
        "metric_states": FunctionPart(lambda: _metric_states(module),
                                      lambda state: _load_metric_states(module, state)),
    }  # fmt: skip

    def ignore(_state: Any) -> None:
        """Records for people and Lightning: the parts that restore them are elsewhere."""

    model: Stateful = FunctionPart(module.state_dict, load_model)
    optimizers: Stateful = PartList(fsdp.optimizer_parts(module, trainer.optimizers), "optimizers")
    if sharded:
        model = ModelShards(module, source)
        optimizers = OptimizerShards(module, trainer.optimizers, source)
    elif fsdp.is_sharded(module):  # the full state dicts, gathered by every rank
        model = fsdp.ModelState(module, source)
    parts: dict[str, Stateful] = {
        "state_dict": model,
        # On resume the recipe re-creates the hyperparameters; load_from_checkpoint reads them.
        "hyper_parameters": FunctionPart(lambda: _plain(dict(module.hparams)), ignore),
        "hparams_name": FunctionPart(lambda: module.hparams_name, ignore),
        "epoch": FunctionPart(lambda: trainer.current_epoch, ignore),  # loops has the position
        "global_step": FunctionPart(lambda: trainer.global_step, ignore),
        LIGHTNING_VERSION_KEY: FunctionPart(lambda: LIGHTNING_VERSION, ignore),
        "optimizer_states": optimizers,
        "lr_schedulers": PartList(
            [c.scheduler for c in trainer.lr_scheduler_configs], "lr schedulers"
        ),  # fmt: skip
        "callbacks": NamedParts(callback_states(trainer.callbacks), "callback", source),
        "loops": FunctionPart(
            lambda: {"fit_loop": loop.state_dict()},
            lambda state: loop.load_state_dict(state["fit_loop"]),
        ),  # fmt: skip
        "launcher_precision": trainer.precision_plugin,
        # Loaded after "loops": at another world size it moves the epoch's position.
        "launcher_sampler": FunctionPart(
            lambda: reshard.sampler_state(trainer),
            lambda state: reshard.load_sampler_state(trainer, state),
        ),  # fmt: skip
        "launcher_per_rank": PerRankParts(per_rank, trainer, source),
        "launcher_loggers": NamedParts(
            {_logger_key(lg): lg for lg in trainer.loggers}, "logger", source, missing_ok=True
        ),  # fmt: skip
        "launcher_launch": FunctionPart(lambda: _plain(launch_record(trainer)), check_launch),
    }
    datamodule = getattr(trainer, "datamodule", None)  # DataModule.load_from_checkpoint reads it
    if datamodule is not None:
        parts.update(_datamodule_parts(datamodule, ignore))
    return parts


def _datamodule_parts(datamodule: Any, ignore: Callable[[Any], None]) -> dict[str, Stateful]:
    """Lightning's datamodule keys: its hyperparameters and their name, and its own state
    (under its class's qualified name; restored on resume) when it keeps any."""
    from launcher.train.datamodule import DataModule

    parts: dict[str, Stateful] = {}
    if datamodule.hparams:
        hparams, name = dict(datamodule.hparams), getattr(datamodule, "hparams_name", None)
        parts["datamodule_hyper_parameters"] = FunctionPart(lambda: _plain(hparams), ignore)
        parts["datamodule_hparams_name"] = FunctionPart(lambda: name, ignore)
    if getattr(type(datamodule), "state_dict", None) is not DataModule.state_dict:
        parts[type(datamodule).__qualname__] = FunctionPart(
            datamodule.state_dict, datamodule.load_state_dict, optional=True
        )
    return parts


def callback_states(callbacks: list[Any]) -> dict[str, Any]:
    """Stateful callbacks by `state_key`; two with one key are an error, as in Lightning.

    Callbacks are duck-typed: one without `state_dict` has no state. A `Callback` subclass that
    keeps the base's `state_dict` has none either, so its key may repeat.
    """
    from launcher.callbacks.base import Callback

    out: dict[str, Any] = {}
    for cb in callbacks:
        saves = getattr(type(cb), "state_dict", None)
        if saves is None or saves is Callback.state_dict:
            continue
        key = getattr(cb, "state_key", type(cb).__qualname__)
        if key in out:
            raise UserError(
                f"Found more than one stateful callback of type `{type(cb).__name__}` with "
                f"state_key {key!r}: one state would be lost in the checkpoint. Give them "
                "different settings (ModelCheckpoint: monitor, mode, every_n_*), or a "
                "`state_key` property that tells them apart."
            )
        out[key] = cb
    return out


def load_parts(parts: Mapping[str, Stateful], states: dict[str, Any], source: str) -> None:
    """Hand each saved state to its part; a key no part consumes is a `UserError`."""
    unknown = sorted(set(states) - set(parts))
    if unknown:
        raise UserError(f"checkpoint {source} has keys nothing consumed: {unknown}")
    optional = {name for name, part in parts.items() if getattr(part, "optional", False)}
    missing = sorted(set(parts) - set(states) - _OPTIONAL - optional)
    if missing:
        raise UserError(f"checkpoint {source} lacks {missing}; it was not written by this trainer")
    for name, part in parts.items():
        if name in states:
            part.load_state_dict(states[name])


# -- run directory ---------------------------------------------------------------------------
def agree_on_run_dir(trainer: Trainer, model: Module) -> str:
    """The run directory, chosen on rank 0 and broadcast so every rank writes to the same one."""
    from launcher.train.resolve import recipe_name

    run_dir = trainer.run_dir
    if run_dir is None and trainer.is_global_zero:
        experiment = trainer.experiment_name or recipe_name(model)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = str(Path(trainer.default_root_dir) / experiment / f"{experiment}-{stamp}")
    run_dir = trainer.broadcast(run_dir)
    if trainer.is_global_zero and not trainer.fast_dev_run:  # fast_dev_run leaves no files
        try:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create the run directory {run_dir}: {exc.strerror}. "
                "Choose a writable place with --output-dir (or default_root_dir=...)."
            ) from exc
    return str(run_dir)


# -- saving ----------------------------------------------------------------------------------
def build_state(trainer: Trainer, sharded: bool = False) -> dict[str, Any] | None:
    """The full checkpoint dict on rank 0 (None elsewhere). Collective when distributed.

    As in Lightning, every rank builds the dict and calls the `on_save_checkpoint` hooks
    (a hook may hold a collective, or rank-local bookkeeping); only rank 0's is written.
    `sharded`: the model and optimizers as each rank's shards, which the other ranks return.
    """
    parts = checkpoint_parts(trainer, sharded=sharded)
    state: dict[str, Any] = {FORMAT_KEY: FORMAT_VERSION}
    for name, part in parts.items():  # collective parts run on every rank, in the same order
        state[name] = part.state_dict()
    ours = set(state)
    trainer.call_hook("on_save_checkpoint", state)
    if not trainer.is_global_zero:
        return {k: state[k] for k in SHARDED_KEYS} if sharded else None
    added = sorted(set(state) - ours)
    if added:  # handed back to on_load_checkpoint, not to a part
        state[USER_KEYS] = added
    return state


def save_resume_checkpoint(trainer: Trainer, blocking: bool = False) -> str:
    """Add a rolling exact-resume checkpoint (rank 0 writes; async if configured).

    The last one of a finished run (`trainer.loop.finished`) is always written blocking.
    """
    manager = trainer.checkpoints
    if manager is None:
        raise RuntimeError("resume checkpoints are written during fit() only")
    finished = trainer.loop.finished
    state = build_state(trainer, sharded=manager.sharded)  # sharded: every rank saves its own
    path = ""
    if state is not None:
        # Metrics up to this step must be stored (or spooled) before a checkpoint claims them:
        # a resumed run re-logs only what comes after it, so nothing is lost or duplicated.
        # Their upload starts with the save and is waited for before the file takes its name
        # (see CheckpointManager.save for when it overlaps the write).
        loggers = list(trainer.loggers)

        files = trainer.checkpoint_files

        def flush_loggers() -> Callable[[], None]:
            waits = [lg.request_flush() for lg in loggers]

            def wait_all() -> None:
                for wait in waits:
                    wait()
                # The state names ModelCheckpoint's files: they exist before it is claimed.
                files.wait_idle()

            return wait_all

        path = manager.save(
            state, trainer.global_step, blocking=blocking or finished,
            before_write=flush_loggers, final=finished,
        )  # fmt: skip
    trainer.barrier()
    return path


def save_to(
    trainer: Trainer, filepath: str, weights_only: bool = False, background: bool = False
) -> None:
    """`Trainer.save_checkpoint`: a full (or weights-only) checkpoint at `filepath`.

    `background`: written by `trainer.checkpoint_files` once the state is copied.
    """
    state = build_state(trainer)
    if state is not None:
        if weights_only:  # Lightning's weights-only keys: no optimizers, callbacks or loops
            keep = (*_WEIGHTS_ONLY, *state.get(USER_KEYS, ()))
            state = {k: state[k] for k in keep if k in state}
        if background:
            trainer.checkpoint_files.save(state, filepath)
        else:
            trainer.checkpoint_files.wait()  # in order with the files queued before it
            atomic_torch_save(state, filepath)
    trainer.barrier()


def launch_record(trainer: Trainer) -> dict[str, Any]:
    """What the checkpoint records of the launch: its settings, the world size that wrote it
    (a resume may change it: train/reshard.py), and the settings a resume must share."""
    return {**trainer.launch_settings, "world_size": trainer.world_size, **compat_settings(trainer)}


def compat_settings(trainer: Trainer) -> dict[str, Any]:
    """Settings a resumed run must share with the run that wrote the checkpoint (the world
    size may change: train/reshard.py)."""
    return {
        "strategy": trainer.dist.strategy,  # FSDP's optimizer states are keyed by name
        # The Trainer's argument: a GradientAccumulationScheduler changes the live value.
        "accumulate_grad_batches": trainer.accumulate_grad_batches_arg,
    }


# -- restoring -------------------------------------------------------------------------------
def find_checkpoint(trainer: Trainer, ckpt_path: str) -> tuple[str, dict[str, Any]] | None:
    """Resolve "last", "best", a run directory or a file to (path, state).

    "last" is this run's newest resume checkpoint, else the newest `last*.ckpt` of a
    ModelCheckpoint; with neither it warns and returns None (Lightning: "set and forget").
    In validate/test/predict "last" is only a ModelCheckpoint's `last*.ckpt`, as in Lightning.
    "best" is ModelCheckpoint's `best_model_path`. A path that does not exist is an error.
    """
    stage = trainer.stage
    trainer.checkpoint_files.wait()  # ModelCheckpoint's files still being written
    if ckpt_path == "last":
        manager = trainer.checkpoints
        # Our resume checkpoints continue a fit; evaluating "last" is ModelCheckpoint's, as
        # in Lightning.
        if stage == "fit" and manager is not None and manager.has_checkpoint():
            return manager.load_latest()
        callbacks = [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
        files = [Path(p) for cb in callbacks for p in cb.find_last_checkpoints()]
        if not files:
            warnings.warn(
                f'.{stage}(ckpt_path="last") is set, but there is no last checkpoint available. '
                "No checkpoint will be loaded. HINT: Set `ModelCheckpoint(..., save_last=True)`.",
                stacklevel=3,
            )
            return None
        path = max(files, key=lambda p: p.stat().st_mtime)
        return str(path), safe_load(path)
    if ckpt_path == "best":
        ckpt_path = best_model_path(trainer)
    path = Path(ckpt_path)
    if path.is_dir():
        resume_dir = path / "checkpoints" / "resume" if (path / "checkpoints").is_dir() else path
        return CheckpointManager(str(resume_dir)).load_latest()
    if not path.is_file():
        raise UserError(f"checkpoint {ckpt_path} does not exist; pass a .ckpt file or a run dir")
    return str(path), safe_load(path)


def best_model_path(trainer: Trainer) -> str:
    """`ckpt_path="best"`: the first ModelCheckpoint's best file, with Lightning's errors."""
    stage = trainer.stage
    callbacks = [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
    if len(callbacks) > 1:
        warnings.warn(
            f'`.{stage}(ckpt_path="best")` is called with Trainer configured with multiple '
            "`ModelCheckpoint` callbacks. It will use the best checkpoint path from first "
            "checkpoint callback.",
            stacklevel=4,
        )
    if not callbacks:
        raise UserError(f'`.{stage}(ckpt_path="best")` is set but `ModelCheckpoint` is not '
                        "configured.")  # fmt: skip
    if not callbacks[0].best_model_path:
        if trainer.fast_dev_run:
            raise UserError(
                f'You cannot execute `.{stage}(ckpt_path="best")` with `fast_dev_run=True`. '
                f"Please pass an exact checkpoint path to `.{stage}(ckpt_path=...)`"
            )
        raise UserError(f'`.{stage}(ckpt_path="best")` is set but `ModelCheckpoint` is not '
                        "configured to save the best model.")  # fmt: skip
    return callbacks[0].best_model_path


def select_ckpt_path(
    trainer: Trainer, ckpt_path: str | None, model_provided: bool, stacklevel: int = 4
) -> str | None:
    """What validate/test/predict load, as Lightning's `_parse_ckpt_path` decides.

    A model given and no `ckpt_path`: its own weights (None). No model given (the fitted one
    is used) and no `ckpt_path`: "best", with Lightning's warning.
    """
    if ckpt_path is not None or model_provided:
        return ckpt_path
    stage = trainer.stage
    if trainer.is_global_zero:
        warnings.warn(
            f"`.{stage}(ckpt_path=None)` was called without a model. The best model of the previous "
            f"`fit` call will be used. You can pass `.{stage}(ckpt_path='best')` to use the best "
            f"model or `.{stage}(ckpt_path='last')` to use the last model. If you pass a value, "
            "this warning will be silenced.",
            stacklevel=stacklevel,
        )
    return "best"


def upgrade(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """`state` in this FORMAT_VERSION's layout; format 1 files are converted.

    Raises `UserError` for a file that is neither (a Lightning checkpoint: load its weights
    with `Module.load_from_checkpoint` or `validate/test(ckpt_path=...)`).
    """
    state = dict(state)
    if state.get(FORMAT_KEY) == FORMAT_VERSION:
        return state
    if state.get("format") != 1:
        raise UserError(
            f"{source} is not a launcher checkpoint (format {FORMAT_VERSION}), so training cannot "
            "resume from it; a Lightning checkpoint's weights load with "
            "Module.load_from_checkpoint(path) or validate/test(ckpt_path=path)."
        )
    del state["format"]
    out: dict[str, Any] = {FORMAT_KEY: FORMAT_VERSION, LIGHTNING_VERSION_KEY: LIGHTNING_VERSION}
    for key, value in state.items():
        out[_FORMAT_1_KEYS.get(key, key)] = value
    loop = out.pop("loop", None)
    if loop is not None:
        out["loops"] = {"fit_loop": loop}
        out["epoch"], out["global_step"] = loop["epoch"], loop["global_step"]
    elif "state_dict" in out:  # a weights-only file: Lightning's keys say when it was written
        out["epoch"] = out["global_step"] = 0
    if "callbacks" in out:
        out["callbacks"] = {_format_1_state_key(k): v for k, v in out["callbacks"].items()}
    return out


def _format_1_state_key(key: str) -> str:
    """Format 1 wrote `ModelCheckpoint{monitor=val_loss,mode=min,...}`; now Lightning's key."""
    match = re.fullmatch(r"(ModelCheckpoint|EarlyStopping)\{(.*)\}", key)
    if match is None:
        return key
    values: dict[str, Any] = {}
    for pair in match[2].split(","):
        name, _, text = pair.partition("=")
        values[name] = None if text == "None" else int(text) if text.isdigit() else text
    if match[1] == "ModelCheckpoint":
        values["train_time_interval"] = None
    return generate_state_key(match[1], **values)


def restore(trainer: Trainer, ckpt_path: str) -> bool:
    """Load every part of a checkpoint into `trainer`. Returns True if the run had finished."""
    found = find_checkpoint(trainer, ckpt_path)
    if found is None:
        return False
    path, state = found
    state = upgrade(state, path)
    sharded = isinstance(state.get("state_dict"), ShardedRef)
    parts = checkpoint_parts(trainer, source=path, sharded=sharded)
    # A changed setting is an error even when the run had finished.
    parts["launcher_launch"].load_state_dict(state.pop("launcher_launch", {}))
    loops = state.get("loops")
    if loops is None:
        raise UserError(f"{path} holds weights only, nothing to resume training from; pass it "
                        "to validate/test(ckpt_path=...), or load it in the recipe")  # fmt: skip
    check_same_model(trainer.module, state, path)  # before "already finished": same model?
    loop = loops["fit_loop"]
    # A finished run loads too (as Lightning restores before its loop finds nothing to do):
    # the model has its trained weights, the trainer its step, the logger its run (so
    # nothing opens a second one).
    trainer.call_hook("on_load_checkpoint", state)
    # Again: a hook may have added parts (SWA's scheduler) that the checkpoint holds state for.
    parts = checkpoint_parts(trainer, source=path, sharded=sharded)
    # What the hooks added when saving was theirs to read back; the rest belongs to a part.
    for key in [FORMAT_KEY, USER_KEYS, *state.get(USER_KEYS, ())]:
        state.pop(key, None)
    load_parts({k: v for k, v in parts.items() if k != "launcher_launch"}, state, path)
    if loop["finished"]:
        if trainer.is_global_zero:
            print(f"[launcher] run already finished at step {loop['global_step']} ({path}); "
                  "nothing to do. Use --no-resume to train again.", flush=True)  # fmt: skip
        return True
    if trainer.is_global_zero:
        print(f"[launcher] resumed from {path} (epoch {loop['epoch']}, step "
              f"{loop['global_step']}, batch {loop['batch_idx']})", flush=True)  # fmt: skip
    return False


def load_weights(trainer: Trainer, ckpt_path: str) -> None:
    """Load only the model weights (validate/test with ckpt_path); Lightning's files too."""
    found = find_checkpoint(trainer, ckpt_path)
    if found is None:  # "last" with none: warned, the model keeps its weights (as Lightning)
        return
    path, state = found
    if "format" in state:
        state = upgrade(state, path)
    if "state_dict" not in state:
        raise UserError(f"{path} holds no model weights (no 'state_dict' key)")
    if isinstance(state["state_dict"], ShardedRef):
        ModelShards(trainer.module, path).load_state_dict(state["state_dict"])
    elif fsdp.is_sharded(trainer.module):
        fsdp.ModelState(trainer.module, path).load_state_dict(state["state_dict"])
    else:
        trainer.module.load_state_dict(state["state_dict"])


def _metric_states(module: torch.nn.Module) -> dict[str, Any]:
    """States of metric objects (torchmetrics keep theirs out of the model's state_dict)."""
    out = {}
    for name, sub in module.named_modules():
        state = getattr(sub, "metric_state", None)
        # A MetricCollection's metric_state is its metrics' (dicts): they are saved themselves.
        if (
            not isinstance(state, dict)
            or not hasattr(sub, "reset")
            or any(isinstance(v, Mapping) for v in state.values())
        ):
            continue
        out[name] = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else
                     [t.detach().cpu() for t in v] for k, v in state.items()}  # fmt: skip
    return out


def _load_metric_states(module: torch.nn.Module, states: dict[str, Any]) -> None:
    modules = dict(module.named_modules())
    for name, state in states.items():
        for key, value in state.items():
            setattr(modules[name], key, value)


def _plain(value: Any) -> Any:
    """Primitives only (str for anything else), so weights-only loading accepts it."""
    return json.loads(json.dumps(value, default=str))


def _logger_key(logger: Any) -> str:
    """A logger's checkpoint key: `state_key` (a CSV and a TensorBoard logger may share a
    name); plain objects with the Logger methods go by `name`."""
    return str(getattr(logger, "state_key", None) or logger.name)
