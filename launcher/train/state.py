"""The Trainer's checkpoint: a mapping name -> part, each part saving and restoring itself.

    parts = checkpoint_parts(trainer)        # {"model": ..., "optimizers": ..., "loop": ...}
    state = build_state(trainer)             # collective: every rank calls it
    save_resume_checkpoint(trainer)          # rolling, crash-safe, in RUN_DIR/checkpoints/resume
    restore(trainer, "last")                 # exact resume; unknown keys are an error

A part is anything with `state_dict()` / `load_state_dict(state)` (`Stateful`), as in
torchtitan's `CheckpointManager(states=...)` and Fabric's `save(path, state)`. Adding one (a
sharded model state, a prediction loop) is one entry in `checkpoint_parts`. A part that needs
every rank to take part in saving (a collective) says so with `collective = True`: it is saved
on every rank, the others only on rank 0. Per-rank parts (RNG states, running epoch sums,
metric-object states) are gathered from every rank so each rank gets its own back on resume.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from launcher.errors import UserError
from launcher.train.checkpoint_store import CheckpointManager, atomic_torch_save, safe_load
from launcher.train.seed import load_rng_state, rng_state

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer

FORMAT_VERSION = 1
# Parts a checkpoint may lack: records for people and tools, or checks that older files skip.
_OPTIONAL = frozenset({"hparams", "launch"})


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
    """Parts saved as a dict by name (callbacks by `state_key`, loggers by `name`).

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
        load_parts(self.parts, dict(states[self.trainer.global_rank]), self.source)


def checkpoint_parts(trainer: Trainer, source: str = "") -> dict[str, Stateful]:
    """Every part of the trainer's checkpoint, by its key in the file.

    `source` names the checkpoint being loaded in error messages.
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

    def load_seed(state: dict[str, Any]) -> None:
        trainer.seed = loop.seed = state["seed"]

    def check_launch(saved: dict[str, Any]) -> None:
        for key, now in compat_settings(trainer).items():
            if key in saved and saved[key] != now:
                raise UserError(
                    f"cannot resume {source}: {key} changed from {saved[key]} to {now}. "
                    f"Resume with {key}={saved[key]}, or start a new run with --no-resume."
                )

    callbacks = {
        getattr(cb, "state_key", type(cb).__qualname__): cb
        for cb in trainer.callbacks
        if hasattr(cb, "state_dict")  # callbacks are duck-typed; stateless ones have none
    }
    per_rank: dict[str, Stateful] = {
        "rng": FunctionPart(rng_state, load_rng_state),
        "results": trainer.train_results,
        "metric_states": FunctionPart(lambda: _metric_states(module),
                                      lambda state: _load_metric_states(module, state)),
    }  # fmt: skip
    return {
        "model": FunctionPart(module.state_dict, load_model),
        "optimizers": PartList(trainer.optimizers, "optimizers"),
        "lr_schedulers": PartList(
            [c.scheduler for c in trainer.lr_scheduler_configs], "lr schedulers"
        ),  # fmt: skip
        "precision": trainer.precision,
        "loop": loop,
        "sampler": FunctionPart(
            lambda: {"seed": loop.seed, "world_size": trainer.world_size}, load_seed
        ),  # fmt: skip
        "per_rank": PerRankParts(per_rank, trainer, source),
        "callbacks": NamedParts(callbacks, "callback", source),
        "loggers": NamedParts(
            {lg.name: lg for lg in trainer.loggers}, "logger", source, missing_ok=True
        ),  # fmt: skip
        # Recorded for people and tools; on resume the recipe re-creates the hyperparameters.
        "hparams": FunctionPart(lambda: _plain(dict(module.hparams)), lambda _state: None),
        "launch": FunctionPart(
            lambda: _plain({**trainer.launch_settings, **compat_settings(trainer)}), check_launch
        ),
    }


def load_parts(parts: Mapping[str, Stateful], states: dict[str, Any], source: str) -> None:
    """Hand each saved state to its part; a key no part consumes is a `UserError`."""
    unknown = sorted(set(states) - set(parts))
    if unknown:
        raise UserError(f"checkpoint {source} has keys nothing consumed: {unknown}")
    missing = sorted(set(parts) - set(states) - _OPTIONAL)
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
def build_state(trainer: Trainer) -> dict[str, Any] | None:
    """The full checkpoint dict on rank 0 (None elsewhere). Collective when distributed."""
    parts = checkpoint_parts(trainer)
    # Collective parts first, on every rank; the rest only where the file is written.
    saved = {name: part.state_dict() for name, part in parts.items()
             if getattr(part, "collective", False)}  # fmt: skip
    if not trainer.is_global_zero:
        return None
    state: dict[str, Any] = {"format": FORMAT_VERSION}
    for name, part in parts.items():
        state[name] = saved[name] if name in saved else part.state_dict()
    trainer.call_hook("on_save_checkpoint", state)
    return state


def save_resume_checkpoint(trainer: Trainer, blocking: bool = False) -> str:
    """Add a rolling exact-resume checkpoint (rank 0 writes; async if configured).

    The last one of a finished run (`trainer.loop.finished`) is always written blocking.
    """
    manager = trainer.checkpoints
    if manager is None:
        raise RuntimeError("resume checkpoints are written during fit() only")
    finished = trainer.loop.finished
    state = build_state(trainer)
    path = ""
    if state is not None:
        # Metrics up to this step must be stored (or spooled) before a checkpoint claims them:
        # a resumed run re-logs only what comes after it, so nothing is lost or duplicated.
        # Their upload starts with the save and is waited for before the file takes its name
        # (see CheckpointManager.save for when it overlaps the write).
        loggers = list(trainer.loggers)

        def flush_loggers() -> Callable[[], None]:
            waits = [lg.request_flush() for lg in loggers]

            def wait_all() -> None:
                for wait in waits:
                    wait()

            return wait_all

        path = manager.save(
            state, trainer.global_step, blocking=blocking or finished, before_write=flush_loggers
        )
    trainer.barrier()
    return path


def save_to(trainer: Trainer, filepath: str, weights_only: bool = False) -> None:
    """`Trainer.save_checkpoint`: a full (or weights-only) checkpoint at `filepath`."""
    state = build_state(trainer)
    if state is not None:
        if weights_only:
            state = {"format": FORMAT_VERSION, "model": state["model"], "hparams": state["hparams"]}
        atomic_torch_save(state, filepath)
    trainer.barrier()


def compat_settings(trainer: Trainer) -> dict[str, Any]:
    """Settings a resumed run must share with the run that wrote the checkpoint."""
    return {
        "world_size": trainer.world_size,
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
    }


# -- restoring -------------------------------------------------------------------------------
def find_checkpoint(trainer: Trainer, ckpt_path: str) -> tuple[str, dict[str, Any]] | None:
    """Resolve "last", a run directory or a file to (path, state); None if "last" has none."""
    if ckpt_path == "last":
        manager = trainer.checkpoints
        if manager is None or not manager.has_checkpoint():
            return None
        return manager.load_latest()
    path = Path(ckpt_path)
    if path.is_dir():
        resume_dir = path / "checkpoints" / "resume" if (path / "checkpoints").is_dir() else path
        return CheckpointManager(str(resume_dir)).load_latest()
    if not path.is_file():
        raise UserError(f"checkpoint {ckpt_path} does not exist; pass a .ckpt file or a run dir")
    return str(path), safe_load(path)


def restore(trainer: Trainer, ckpt_path: str) -> bool:
    """Load every part of a checkpoint into `trainer`. Returns True if the run had finished."""
    found = find_checkpoint(trainer, ckpt_path)
    if found is None:
        return False
    path, state = found
    state = dict(state)
    if state.pop("format", None) != FORMAT_VERSION:
        raise UserError(f"{path} is not a launcher checkpoint (format {FORMAT_VERSION})")
    parts = checkpoint_parts(trainer, source=path)
    # A changed setting is an error even when the run had finished.
    parts["launch"].load_state_dict(state.pop("launch", {}))
    loop = state.get("loop")
    if loop is None:
        raise UserError(f"{path} holds weights only, nothing to resume training from; pass it "
                        "to validate/test(ckpt_path=...), or load it in the recipe")  # fmt: skip
    if loop["finished"]:
        if trainer.is_global_zero:
            print(f"[launcher] run already finished at step {loop['global_step']} ({path}); "
                  "nothing to do. Use --no-resume to train again.", flush=True)  # fmt: skip
        return True
    trainer.call_hook("on_load_checkpoint", state)
    load_parts({k: v for k, v in parts.items() if k != "launch"}, state, path)
    if trainer.is_global_zero:
        print(f"[launcher] resumed from {path} (epoch {loop['epoch']}, step "
              f"{loop['global_step']}, batch {loop['batch_idx']})", flush=True)  # fmt: skip
    return False


def load_weights(trainer: Trainer, ckpt_path: str) -> None:
    """Load only the model weights (for validate/test with ckpt_path)."""
    found = find_checkpoint(trainer, ckpt_path) if ckpt_path != "last" else None
    if found is None:
        raise UserError(f"no checkpoint found for ckpt_path={ckpt_path!r}")
    trainer.module.load_state_dict(found[1]["model"])


def _metric_states(module: torch.nn.Module) -> dict[str, Any]:
    """States of metric objects (torchmetrics keep theirs out of the model's state_dict)."""
    out = {}
    for name, sub in module.named_modules():
        state = getattr(sub, "metric_state", None)
        if isinstance(state, dict) and hasattr(sub, "reset"):
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
