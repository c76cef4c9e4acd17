"""The Trainer's checkpoint: assembling, saving and restoring its dict of stateful parts.

    state = build_state(trainer)             # collective: every rank calls it
    save_resume_checkpoint(trainer)          # rolling, crash-safe, in RUN_DIR/checkpoints/resume
    restore(trainer, "last")                 # exact resume; unknown keys are an error

Per-rank parts (RNG states, running epoch sums, metric-object states) are gathered from every
rank so each rank gets its own back on resume.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist

from launcher.errors import UserError
from launcher.train.checkpoint_store import CheckpointManager, atomic_torch_save, safe_load
from launcher.train.seed import load_rng_state, rng_state

FORMAT_VERSION = 1


# -- run directory ---------------------------------------------------------------------------
def agree_on_run_dir(trainer: Any, model: Any) -> str:
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
def build_state(trainer: Any, finished: bool = False) -> dict[str, Any] | None:
    """The full checkpoint dict on rank 0 (None elsewhere). Collective when distributed."""
    module = trainer.module
    per_rank = {
        "rng": rng_state(),
        "results": trainer._train_results.state_dict(),
        "metric_states": _metric_states(module),
    }
    gathered = [per_rank]
    if trainer.world_size > 1:
        gathered = [None] * trainer.world_size
        torch_dist.all_gather_object(gathered, per_rank)
    if not trainer.is_global_zero:
        return None
    epoch, batch_idx = trainer.current_epoch, trainer._batch_idx
    if trainer._epoch_done:  # saved from an epoch-end hook: resume at the next epoch
        epoch, batch_idx = epoch + 1, 0
    state = {
        "format": FORMAT_VERSION,
        "model": module.state_dict(),
        "optimizers": [opt.state_dict() for opt in trainer.optimizers],
        "lr_schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
        "precision": trainer.precision.state_dict(),
        "loop": {
            "epoch": epoch,
            "global_step": trainer.global_step,
            "batch_idx": batch_idx,
            "micro_step": batch_idx % trainer.accumulate_grad_batches,
            "finished": finished,
            "resumes": getattr(trainer, "_resumes", 0),
        },
        "sampler": {"seed": trainer._seed, "world_size": trainer.world_size},
        "per_rank": gathered,
        "callbacks": {cb.state_key if hasattr(cb, "state_key") else type(cb).__qualname__:
                      cb.state_dict() for cb in trainer.callbacks if hasattr(cb, "state_dict")},
        "loggers": {lg.name: lg.state_dict() for lg in trainer.loggers},
        "hparams": _plain(dict(getattr(module, "hparams", {}))),
        "launch": _plain({**trainer.launch_settings, **compat_settings(trainer)}),
    }  # fmt: skip
    trainer._call("on_save_checkpoint", state)
    return state


def save_resume_checkpoint(trainer: Any, finished: bool = False, blocking: bool = False) -> str:
    """Add a rolling exact-resume checkpoint (rank 0 writes; async if configured)."""
    state = build_state(trainer, finished)
    path = ""
    if state is not None:
        # Metrics up to this step must be stored (or spooled) before a checkpoint claims them:
        # a resumed run re-logs only what comes after it, so nothing is lost or duplicated.
        # Their upload starts with the save and is waited for before the file takes its name
        # (see CheckpointManager.save for when it overlaps the write).
        loggers = list(trainer.loggers)

        def flush_loggers() -> Callable[[], None]:
            waits = [lg.request_flush() for lg in loggers]
            return lambda: [wait() for wait in waits]

        path = trainer.checkpoints.save(
            state, trainer.global_step, blocking=blocking or finished, before_write=flush_loggers
        )
    trainer.barrier()
    return path


def save_to(trainer: Any, filepath: str, weights_only: bool = False) -> None:
    """`Trainer.save_checkpoint`: a full (or weights-only) checkpoint at `filepath`."""
    state = build_state(trainer)
    if state is not None:
        if weights_only:
            state = {"format": FORMAT_VERSION, "model": state["model"], "hparams": state["hparams"]}
        atomic_torch_save(state, filepath)
    trainer.barrier()


def compat_settings(trainer: Any) -> dict[str, Any]:
    """Settings a resumed run must share with the run that wrote the checkpoint."""
    return {
        "world_size": trainer.world_size,
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
    }


# -- restoring -------------------------------------------------------------------------------
def find_checkpoint(trainer: Any, ckpt_path: str) -> tuple[str, dict[str, Any]] | None:
    """Resolve "last", a run directory or a file to (path, state); None if "last" has none."""
    if ckpt_path == "last":
        manager = trainer.checkpoints
        return manager.load_latest() if manager.has_checkpoint() else None
    path = Path(ckpt_path)
    if path.is_dir():
        resume_dir = path / "checkpoints" / "resume" if (path / "checkpoints").is_dir() else path
        return CheckpointManager(str(resume_dir)).load_latest()
    if not path.is_file():
        raise UserError(f"checkpoint {ckpt_path} does not exist; pass a .ckpt file or a run dir")
    return str(path), safe_load(path)


def restore(trainer: Any, ckpt_path: str) -> bool:
    """Load every part of a checkpoint into `trainer`. Returns True if the run had finished."""
    found = find_checkpoint(trainer, ckpt_path)
    if found is None:
        return False
    path, state = found
    state = dict(state)
    if state.pop("format", None) != FORMAT_VERSION:
        raise UserError(f"{path} is not a launcher checkpoint (format {FORMAT_VERSION})")
    _check_compatible(trainer, state.pop("launch", {}), path)
    loop = state.pop("loop")
    if loop["finished"]:
        if trainer.is_global_zero:
            print(f"[launcher] run already finished at step {loop['global_step']} ({path}); "
                  "nothing to do. Use --no-resume to train again.", flush=True)  # fmt: skip
        return True
    trainer._call("on_load_checkpoint", state)
    module = trainer.module
    try:
        module.load_state_dict(state.pop("model"))
    except RuntimeError as exc:
        raise UserError(
            f"the model no longer matches checkpoint {path} (its shape changed):\n{exc}\n"
            "Resume with the original hyperparameters, or start fresh with --no-resume."
        ) from exc
    for opt, opt_state in zip(trainer.optimizers, state.pop("optimizers"), strict=True):
        opt.load_state_dict(opt_state)
    for config, sched_state in zip(trainer.lr_scheduler_configs, state.pop("lr_schedulers"),
                                   strict=True):  # fmt: skip
        config.scheduler.load_state_dict(sched_state)
    trainer.precision.load_state_dict(dict(state.pop("precision")))
    mine = state.pop("per_rank")[trainer.global_rank]
    load_rng_state(mine["rng"])
    trainer._train_results.load_state_dict(mine["results"])
    _load_metric_states(module, mine["metric_states"])
    trainer.seed = trainer._seed = state.pop("sampler")["seed"]
    _load_named(trainer.callbacks, state.pop("callbacks"), "callback", path)
    _load_named(trainer.loggers, state.pop("loggers"), "logger", path, missing_ok=True)
    state.pop("hparams", None)  # recorded for people and tools; the recipe re-creates them
    if state:
        raise UserError(f"checkpoint {path} has keys nothing consumed: {sorted(state)}")
    trainer.current_epoch, trainer.global_step = loop["epoch"], loop["global_step"]
    trainer._batch_idx = loop["batch_idx"]
    trainer._resumes = loop.get("resumes", 0) + 1
    if trainer.is_global_zero:
        print(f"[launcher] resumed from {path} (epoch {loop['epoch']}, step "
              f"{loop['global_step']}, batch {loop['batch_idx']})", flush=True)  # fmt: skip
    return False


def load_weights(trainer: Any, ckpt_path: str) -> None:
    """Load only the model weights (for validate/test with ckpt_path)."""
    found = find_checkpoint(trainer, ckpt_path) if ckpt_path != "last" else None
    if found is None:
        raise UserError(f"no checkpoint found for ckpt_path={ckpt_path!r}")
    trainer.module.load_state_dict(found[1]["model"])


def _check_compatible(trainer: Any, saved: dict[str, Any], path: str) -> None:
    for key, now in compat_settings(trainer).items():
        if key in saved and saved[key] != now:
            raise UserError(
                f"cannot resume {path}: {key} changed from {saved[key]} to {now}. "
                f"Resume with {key}={saved[key]}, or start a new run with --no-resume."
            )


def _load_named(parts: list[Any], states: dict[str, Any], what: str, path: str,
                missing_ok: bool = False) -> None:  # fmt: skip
    by_key = {getattr(p, "state_key", None) or getattr(p, "name", type(p).__qualname__): p
              for p in parts}  # fmt: skip
    for key, sub in states.items():
        part = by_key.get(key)
        if part is None:
            if sub and not missing_ok:
                raise UserError(f"checkpoint {path} holds state for {what} {key!r}, "
                                f"which this run does not have; present: {sorted(by_key)}")  # fmt: skip
            continue
        part.load_state_dict(sub)


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
