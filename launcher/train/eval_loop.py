"""The validation and test loop: one epoch of `validation_step` / `test_step`.

    outcome = run_eval(trainer, "validate", loader, limit=10)
    outcome.metrics                  # {name: tensor}: the epoch values, as logged
    outcome.logger_names             # names logged with logger=True (prog_bar_names likewise)

One pass over the loader under `torch.no_grad()` and the precision's autocast. What the step
logs goes to a fresh `Results` (`trainer.results` while the loop runs) whose epoch means land
in `trainer.callback_metrics` before the epoch-end hook. The model is put in eval mode and
back. The Trainer keeps the returned names: they say which metrics go to the loggers and the
progress bar (`Trainer.validate`, `Trainer.test` and the validation inside `fit` call it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from launcher.train.resolve import move_to_device
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
    model.eval()
    trainer.call_hook(f"on_{hook_stage}_epoch_start")
    with torch.no_grad():
        for batch_idx, batch in enumerate(loader):
            if batch_idx >= limit:
                break
            batch = move_to_device(batch, trainer.device)
            results.batch = batch
            with trainer.precision.forward_context():
                output = step_fn(batch, batch_idx)
            trainer.call_hook(f"on_{hook_stage}_batch_end", output, batch, batch_idx)
    metrics = results.epoch_metrics()
    trainer.callback_metrics.update(results.with_plain_names(metrics))
    trainer.call_hook(f"on_{hook_stage}_epoch_end")
    trainer.results = previous
    model.train(was_training)
    return EvalOutcome(metrics, results.names("logger"), results.names("prog_bar"))
