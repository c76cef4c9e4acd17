"""What the trainer tells its loggers about a run, from start to final status.

    record = RunRecord(trainer)             # the trainer owns one: `trainer.run_record`
    record.start()                          # params, recipe + config artifacts; tags on a thread
    record.set_state("waiting for requeue") # the `launcher.state` tag
    record.end("FINISHED")                  # state tag, then every logger's finalize(status)

Only global rank 0 holds loggers (`trainer.loggers` is empty elsewhere), so on other ranks these
do nothing. The tags (recipe hash, git commit) need file reads and a git process: they are
computed on a helper thread, and `set_state` joins it so they never overwrite a later state.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.common.files import atomic_write_text
from launcher.common.secrets import mask_secrets, mask_tree
from launcher.common.threads import start_thread
from launcher.errors import UserError
from launcher.sweep.trial_info import trial_params, trial_tags
from launcher.tracking.run_info import END_REASON_TAG, RUN_DIR_TAG, flatten
from launcher.tracking.run_info import run_tags as _run_tags

if TYPE_CHECKING:
    from launcher.train.trainer import Trainer


# MLflow's final run statuses -> the words Lightning's Trainer passes to `Logger.finalize`.
_LIGHTNING_STATUS = {"FINISHED": "success", "FAILED": "failed", "KILLED": "killed"}


class RunRecord:
    """What the trainer's loggers are told about its run; `trainer.run_record` is one.

    The tag thread started by `start` is joined before any later tag, so the run's first tags
    never overwrite a later state.
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self._tagging: threading.Thread | None = None  # sends the run's first tags
        self.started = False  # start() ran in this fit: the loggers were told of the run

    def start(self) -> None:
        """Hand the run's params and artifacts to every logger; send its tags from a thread."""
        trainer = self.trainer
        loggers = list(trainer.loggers)
        self._tagging = None
        self.started = True
        if not loggers:  # ranks other than 0, or logger=False: nothing to assemble
            return
        params, artifacts = run_params(trainer), run_artifacts(trainer)
        for lg in loggers:
            lg.log_hyperparams(params)
            for path, folder in artifacts:
                lg.log_artifact(path, folder)
            lg.log_graph(trainer.module)  # as Lightning's Trainer: loggers decide (TensorBoard)
            lg.save()

        def send_tags() -> None:
            try:
                tags = run_tags(trainer)
            except Exception as exc:  # tags are bookkeeping: never fail the run over them
                logging.getLogger("launcher").warning("run tags not recorded: %s", exc)
                return
            for lg in loggers:
                lg.set_tags(mask_secrets(tags))

        self._tagging = start_thread(send_tags, "launcher-run-tags")

    def set_state(self, state: str) -> None:
        """Set the `launcher.state` tag ("running", "waiting for requeue", "finished"...)."""
        if self._tagging is not None:
            self._tagging.join()  # the run's first tags go before its state changes
        for lg in self.trainer.loggers:
            lg.set_tags({"launcher.state": state})

    def end(self, status: str, reason: str | None = None) -> None:
        """Final state tag, then every logger's `finalize` with Lightning's word for `status`
        ("FINISHED" -> "success", "FAILED" -> "failed"; "KILLED" -> "killed", which Lightning
        calls "failed": our loggers record the interrupt). `reason`: the `launcher.end_reason`
        tag, why a run ended that could have gone on (its requeue budget spent)."""
        self.set_state(status.lower())
        if reason:
            for lg in self.trainer.loggers:
                lg.set_tags({END_REASON_TAG: reason})
        word = _LIGHTNING_STATUS.get(status, status)
        for lg in self.trainer.loggers:
            lg.finalize(word)
        self.started = False

    def upload_best(self) -> None:
        """Upload `ModelCheckpoint`'s best file when the launch asked for it (`log_checkpoints`)."""
        trainer = self.trainer
        callback = trainer.checkpoint_callback
        best = callback.best_model_path if callback is not None else None
        if best and trainer.launch_settings.get("log_checkpoints") and Path(best).is_file():
            for lg in trainer.loggers:
                lg.log_artifact(best, "checkpoints")


def run_params(trainer: Trainer) -> dict[str, Any]:
    """Hyperparameters (the Module's and the DataModule's, merged as Lightning's loggers get
    them) + trainer settings + launch settings, flat and secret-masked; unset (None) ones left
    out, and the launch command (the run's note, not a parameter)."""
    hparams = merged_hparams(trainer)
    settings = {
        "max_epochs": trainer.max_epochs, "max_steps": trainer.max_steps,
        "precision": trainer.precision, "accumulate_grad_batches":
        trainer.accumulate_grad_batches, "gradient_clip_val": trainer.gradient_clip_val,
        "seed": trainer.seed, "world_size": trainer.world_size, "device": trainer.device.type,
    }  # fmt: skip
    launch = {k: v for k, v in trainer.launch_settings.items() if k not in ("command", "sweep")}
    params = {**flatten(hparams), **flatten(settings, "trainer."),
              **flatten(launch, "launch."),
              **trial_params(trainer.launch_settings.get("sweep"))}  # fmt: skip
    return mask_secrets({k: v for k, v in params.items() if v is not None})


def merged_hparams(trainer: Trainer) -> dict[str, Any]:
    """The Module's hparams and the DataModule's in one dict, as Lightning logs them; a key
    in both with different values is an error (Lightning's rule), not one silently lost."""
    hparams = dict(trainer.module.hparams)
    datamodule = trainer.datamodule
    data = dict(getattr(datamodule, "hparams", None) or {}) if datamodule is not None else {}
    clashes = sorted(k for k in hparams.keys() & data.keys() if hparams[k] != data[k])
    if clashes:
        raise UserError(
            f"the hyperparameters {clashes} are in both the Module's and the DataModule's "
            "save_hyperparameters() with different values; rename one of them (Lightning "
            "refuses this too: its loggers get both dicts merged)"
        )
    return {**hparams, **data}


def run_artifacts(trainer: Trainer) -> list[tuple[str, str]]:
    """(file, artifact folder) pairs every run uploads: the recipe and the resolved config.

    The config is uploaded as a copy with its secrets masked (`--set` values, URL credentials),
    `RUN_DIR/uploads/launch.json`; the run's own `launch.json` keeps them for resumes.
    """
    out: list[tuple[str, str]] = []
    recipe = trainer.launch_settings.get("recipe")
    if recipe and Path(recipe).is_file():
        out.append((recipe, "recipe"))
    resolved = Path(trainer.run_dir or ".") / "launch.json"
    if trainer.run_dir is not None and resolved.is_file():
        masked = Path(trainer.run_dir) / "uploads" / "launch.json"
        config = mask_tree(json.loads(resolved.read_text()))
        atomic_write_text(masked, json.dumps(config, indent=2))
        out.append((str(masked), "config"))
    return out


def run_tags(trainer: Trainer) -> dict[str, str]:
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
    tags["launcher.resumes"] = str(trainer.loop.resumes)
    if trainer.run_dir:  # its heartbeat: `launch runs` tells a run that died without a word
        tags[RUN_DIR_TAG] = str(Path(trainer.run_dir).resolve())
    tags.update(trial_tags(settings.get("sweep")))  # a sweep trial: nested under its parent
    command = settings.get("command")
    if command:  # MLflow shows its note on the run's page: how to run this again
        tags["mlflow.note.content"] = f"`{command}`"
    return tags
