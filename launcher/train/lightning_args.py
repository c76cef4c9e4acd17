"""Lightning `Trainer` arguments this Trainer does not have: a clear error for each.

    check_trainer_kwargs({"plugins": [MyPlugin()]}, known)   # UserError: why, and what instead

An argument at Lightning's default is accepted (it asks for what we do anyway); any other value
raises. A name Lightning does not have either is a typo: the error suggests the closest one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from launcher.errors import UserError

_MISSING = object()

# name -> (Lightning's default, why it is not supported / what to use instead)
UNSUPPORTED_TRAINER_ARGS: dict[str, tuple[Any, str]] = {
    "plugins": (None, "precision and cluster plugins are built in: use precision=... and the "
                "launch command's --backend (ClusterEnvironment reads SLURM/torchrun/Ray)"),
    "use_distributed_sampler": (True, "every dataloader gets a resumable distributed sampler "
                                "(exact resume needs it); shard data yourself in an "
                                "IterableDataset instead"),
    "barebones": (False, "turn features off one by one: logger=False, "
                  "enable_checkpointing=False, enable_progress_bar=False, "
                  "enable_model_summary=False"),
    "sync_batchnorm": (False, "convert the model in the recipe: "
                       "torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)"),
    "enable_autolog_hparams": (True, "hyperparameters are always logged; pass logger=False "
                               "to log nothing"),
    "model_registry": (None, "register the model with your MLflow/W&B client after fit"),
}  # fmt: skip


def check_trainer_kwargs(kwargs: dict[str, Any], known: Iterable[str]) -> None:
    """Raise `UserError` for any argument in `kwargs` (the Trainer's `**`-catch-all)."""
    for name, value in kwargs.items():
        default, why = UNSUPPORTED_TRAINER_ARGS.get(name, (_MISSING, ""))
        if default is _MISSING:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UserError(f"Trainer got an unknown argument {name!r}{hint}")
        if value is not default and value != default:
            raise UserError(
                f"Trainer({name}={value!r}) is not supported (Lightning's argument; only its "
                f"default {default!r} is accepted): {why}"
            )


# Lightning `Trainer` attributes we do not have, and what to read instead.
UNSUPPORTED_TRAINER_ATTRS: dict[str, str] = {
    "training": "read trainer.stage ('fit' | 'validate' | 'test') and trainer.sanity_checking",
    "validating": "read trainer.stage and trainer.sanity_checking",
    "testing": "read trainer.stage",
    "evaluating": "read trainer.stage",
    "interrupted": "handle the exception in Callback.on_exception",
    "ckpt_path": "the resumed checkpoint is printed at start; keep the ckpt_path you passed",
    "device_ids": "read trainer.device (one device per process)",
    "distributed_sampler_kwargs": "every loader gets a resumable sampler: rank and world size "
    "are trainer.global_rank and trainer.world_size",
    "enable_validation": "validation runs when a val dataloader and validation_step exist",
    "init_module": "build the layers in Module.configure_model (on the training device)",
    "scaler": "the fp16 GradScaler lives in trainer.precision_plugin (16-mixed only)",
    "test_dataloaders": "the test loader is built inside trainer.test()",
    "num_sanity_val_batches": "min(trainer.num_sanity_val_steps, trainer.num_val_batches)",
    "print": "use Module.print (rank 0 only) or print under trainer.is_global_zero",
}


def unsupported_trainer_attribute(name: str) -> str:
    """The AttributeError message for a Trainer attribute we lack."""
    if name in UNSUPPORTED_TRAINER_ATTRS:
        return (f"Trainer.{name} (Lightning's) is not supported: "
                f"{UNSUPPORTED_TRAINER_ATTRS[name]}")  # fmt: skip
    return f"'Trainer' object has no attribute {name!r}"


def check_weights_only(weights_only: bool | None) -> None:
    """`fit/validate/test/predict(weights_only=...)` (Lightning 2.6): only True (or None) here."""
    if weights_only is False:
        raise UserError(
            "weights_only=False: checkpoints are always loaded with torch.load(weights_only="
            "True) here, so loading one can never run code. Keep what you checkpoint to "
            "tensors, numbers, strings and lists/dicts of them (save an object's state_dict), "
            "and drop weights_only=False."
        )
