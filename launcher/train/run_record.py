"""What the trainer tells its loggers about a run, from start to final status.

    start_run(trainer)                      # params, recipe + config artifacts; tags on a thread
    set_state(trainer, "waiting for requeue")   # the `launcher.state` tag
    end_run(trainer, "FINISHED")            # state tag, then every logger's finalize(status)

Only global rank 0 holds loggers (`trainer.loggers` is empty elsewhere), so on other ranks these
do nothing. The tags (recipe hash, git commit) need file reads and a git process: they are
computed on a helper thread, and `set_state` joins it so they never overwrite a later state.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

from launcher.common.threads import start_thread
from launcher.tracking.run_info import flatten, mask_secrets
from launcher.tracking.run_info import run_tags as _run_tags


def start_run(trainer: Any) -> None:
    """Hand the run's params and artifacts to every logger; send its tags from a helper thread."""
    loggers = list(trainer.loggers)
    trainer._tagging = None
    if not loggers:  # ranks other than 0, or logger=False: nothing to assemble
        return
    params, artifacts = run_params(trainer), run_artifacts(trainer)
    for lg in loggers:
        lg.log_hyperparams(params)
        for path, folder in artifacts:
            lg.log_artifact(path, folder)

    def send_tags() -> None:
        try:
            tags = run_tags(trainer)
        except Exception as exc:  # tags are bookkeeping: never fail the run over them
            logging.getLogger("launcher").warning("run tags not recorded: %s", exc)
            return
        for lg in loggers:
            lg.set_tags(tags)

    trainer._tagging = start_thread(send_tags, "launcher-run-tags")


def set_state(trainer: Any, state: str) -> None:
    """Set the `launcher.state` tag ("running", "waiting for requeue", "finished"...)."""
    if trainer._tagging is not None:
        trainer._tagging.join()  # the run's first tags go before its state changes
    for lg in trainer.loggers:
        lg.set_tags({"launcher.state": state})


def end_run(trainer: Any, status: str) -> None:
    """Final state tag, then `finalize(status)` on every logger ("FINISHED", "FAILED", ...)."""
    set_state(trainer, status.lower())
    for lg in trainer.loggers:
        lg.finalize(status)


def upload_best_checkpoint(trainer: Any) -> None:
    """Upload `ModelCheckpoint`'s best file when the launch asked for it (`log_checkpoints`)."""
    best = getattr(trainer.checkpoint_callback, "best_model_path", None)
    if best and trainer.launch_settings.get("log_checkpoints") and Path(best).is_file():
        for lg in trainer.loggers:
            lg.log_artifact(best, "checkpoints")


def run_params(trainer: Any) -> dict[str, Any]:
    """Hyperparameters + trainer settings + launch settings, flat and secret-masked."""
    hparams = dict(getattr(trainer.module, "hparams", {}))
    settings = {
        "max_epochs": trainer.max_epochs, "max_steps": trainer.max_steps,
        "precision": trainer.precision.name, "accumulate_grad_batches":
        trainer.accumulate_grad_batches, "gradient_clip_val": trainer.gradient_clip_val,
        "seed": trainer.seed, "world_size": trainer.world_size, "device": trainer.device.type,
    }  # fmt: skip
    params = {**flatten(hparams), **flatten(settings, "trainer."),
              **flatten(trainer.launch_settings, "launch.")}  # fmt: skip
    return mask_secrets(params)


def run_artifacts(trainer: Any) -> list[tuple[str, str]]:
    """(file, artifact folder) pairs every run uploads: the recipe and the resolved config."""
    out = []
    recipe = trainer.launch_settings.get("recipe")
    if recipe and Path(recipe).is_file():
        out.append((recipe, "recipe"))
    resolved = Path(trainer.run_dir) / "launch.json"
    if resolved.is_file():
        out.append((str(resolved), "config"))
    return out


def run_tags(trainer: Any) -> dict[str, str]:
    """Recipe, its hash, git state, backend, job, host; the state "running"; resume count."""
    settings = trainer.launch_settings
    recipe = settings.get("recipe")
    if recipe is None:
        try:
            recipe = inspect.getfile(type(trainer.module))
        except (TypeError, OSError):
            recipe = None
    env = trainer.env
    tags = _run_tags(recipe, settings.get("backend", "local"), env.job_id, env.restart_count)
    tags["launcher.state"] = "running"
    tags["launcher.resumes"] = str(getattr(trainer, "_resumes", 0))
    return tags
