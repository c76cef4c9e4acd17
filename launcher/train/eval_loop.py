"""The validation and test loop: one epoch of `validation_step` / `test_step`.

    outcome = run_eval(trainer, "validate", loader, limit=10)
    outcome.metrics                  # {name: tensor}: the epoch values, as logged
    outcome.logger_names             # names logged with logger=True (prog_bar_names likewise)

One pass over the loader under `torch.inference_mode()` (`torch.no_grad()` with
`Trainer(inference_mode=False)`, and under gloo, as Lightning) and the precision's autocast. What the step
logs goes to a fresh `Results` (`trainer.results` while the loop runs) whose epoch means land
in `trainer.callback_metrics` before the epoch-end hook. Hooks run in Lightning's order
(`on_validation_model_eval`, `on_validation_start`, `..._epoch_start`, per batch
`..._batch_start` / `..._batch_end`, `..._epoch_end`, `on_validation_end`); the model's mode is
restored after. The Trainer keeps the returned names: they say which metrics go to the loggers and the
progress bar (`Trainer.validate`, `Trainer.test` and the validation inside `fit` call it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from launcher.train.manual import step_function
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


def eval_context(inference_mode: bool) -> contextlib.AbstractContextManager[Any]:
    """Lightning's: inference mode, except when asked not to or under gloo (which needs grad
    mode tensors for its collectives)."""
    dist = torch.distributed
    gloo = dist.is_available() and dist.is_initialized() and dist.get_backend() == "gloo"
    return torch.inference_mode() if inference_mode and not gloo else torch.no_grad()


def run_eval(
    trainer: Trainer, stage: str, loader: Iterable[Any], limit: int | float
) -> EvalOutcome:
    """One epoch of `stage` ("validate" or "test") over at most `limit` batches."""
    if limit == 0 or not hasattr(trainer.module, f"{_hook_stage(stage)}_step"):
        return EvalOutcome()
    # As Lightning: the whole loop, its hooks included, runs without autograd.
    with eval_context(trainer.inference_mode):
        return _run_eval(trainer, stage, loader, limit)


def _hook_stage(stage: str) -> str:
    return "validation" if stage == "validate" else "test"


def _run_eval(
    trainer: Trainer, stage: str, loader: Iterable[Any], limit: int | float
) -> EvalOutcome:
    model = trainer.module
    hook_stage = "validation" if stage == "validate" else "test"
    step_fn = getattr(model, f"{hook_stage}_step", None)
    if step_fn is None or limit == 0:
        return EvalOutcome()
    step_fn = step_function(step_fn)  # with or without batch_idx, as Lightning reads it
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
    for batch_idx, batch in enumerate(loader):
        if batch_idx >= limit:
            break
        batch = transfer(batch)
        results.batch = batch
        trainer.call_hook(batch_start, batch, batch_idx)
        with trainer.precision.forward_context():
            output = step_fn(batch, batch_idx)
        trainer.call_hook(f"on_{hook_stage}_batch_end", output, batch, batch_idx)
    metrics = results.epoch_metrics()
    trainer.callback_metrics.update(results.with_plain_names(metrics))
    trainer.call_hook(f"on_{hook_stage}_epoch_end")
    trainer.call_hook(f"on_{hook_stage}_end")
    trainer.results = previous
    if overrides(model, f"on_{hook_stage}_model_train"):
        getattr(model, f"on_{hook_stage}_model_train")()
    else:  # the mode it had before, as Lightning restores it
        model.train(was_training)
    return EvalOutcome(metrics, results.names("logger"), results.names("prog_bar"))
