"""The validation and test loop: one epoch of `validation_step` / `test_step`.

    outcome = run_eval(trainer, "validate", loader, limit=10)
    outcome.metrics                  # {name: tensor}: the epoch values, as logged
    outcome.logger_names             # names logged with logger=True (prog_bar_names likewise)

One pass over the loader under `torch.no_grad()` and the precision's autocast. What the step
logs goes to a fresh `Results` (`trainer.results` while the loop runs) whose epoch means land
in `trainer.callback_metrics` before the epoch-end hook. Hooks run in Lightning's order
(`on_validation_model_eval`, `on_validation_start`, `..._epoch_start`, per batch
`..._batch_start` / `..._batch_end`, `..._epoch_end`, `on_validation_end`); the model's mode is
restored after. The Trainer keeps the returned names: they say which metrics go to the loggers and the
progress bar (`Trainer.validate`, `Trainer.test` and the validation inside `fit` call it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from launcher.train.resolve import overrides
from launcher.train.results import Results

if TYPE_CHECKING:
    from launcher.train.trainer import Trainer


@dataclass
class EvalOutcome:
    """What one validation/test epoch produced."""

    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    logger_names: set[str] = field(default_factory=set)
    prog_bar_names: set[str] = field(default_factory=set)


def run_eval(
    trainer: Trainer, stage: str, loader: Iterable[Any], limit: int | float
) -> EvalOutcome:
    """One epoch of `stage` ("validate" or "test") over at most `limit` batches."""
    model = trainer.module
    hook_stage = "validation" if stage == "validate" else "test"
    step_fn = getattr(model, f"{hook_stage}_step", None)
    if step_fn is None or limit == 0:
        return EvalOutcome()
    previous = trainer.results
    results = trainer.results = Results(stage, trainer.dist.all_reduce)
    was_training = model.training
    # Lightning's order: the model's eval hook, then on_<stage>_start, on_<stage>_epoch_start.
    if overrides(model, f"on_{hook_stage}_model_eval"):
        getattr(model, f"on_{hook_stage}_model_eval")()
    else:
        model.eval()
    trainer.call_hook(f"on_{hook_stage}_start")
    trainer.call_hook(f"on_{hook_stage}_epoch_start")
    transfer, batch_start = trainer.transfer_batch, f"on_{hook_stage}_batch_start"
    with torch.no_grad():
        for batch_idx, batch in enumerate(loader):
            if batch_idx >= limit:
                break
            batch = transfer(batch)
            results.batch = batch
            trainer.call_hook(batch_start, batch, batch_idx)
            with trainer.precision_plugin.forward_context():
                output = step_fn(batch, batch_idx)
            trainer.call_hook(f"on_{hook_stage}_batch_end", output, batch, batch_idx)
    metrics = results.epoch_metrics()
    trainer.callback_metrics.update(results.with_plain_names(metrics))
    trainer.call_hook(f"on_{hook_stage}_epoch_end")
    metrics.update(results.take_epoch_end_values())  # this epoch's too, as in Lightning
    trainer.call_hook(f"on_{hook_stage}_end")
    trainer.results = previous
    if overrides(model, f"on_{hook_stage}_model_train"):
        getattr(model, f"on_{hook_stage}_model_train")()
    else:  # the mode it had before, as Lightning restores it
        model.train(was_training)
    return EvalOutcome(metrics, results.names("logger"), results.names("prog_bar"))
