"""The validation and test loop: `Trainer.validate` / `Trainer.test`, and validation inside fit.

    metrics = run_eval(trainer, "validate", loader, limit=10)    # {name: tensor}, epoch values
    [values] = evaluate(trainer, "test", model, None, datamodule, ckpt_path="best.ckpt")

One pass over the loader under `torch.no_grad()` and the precision's autocast, calling
`validation_step` / `test_step`; what the step logs goes to a fresh `Results` whose epoch means
land in `trainer.callback_metrics`. The model is put in eval mode and back.
"""

from __future__ import annotations

from typing import Any

import torch

from launcher.errors import UserError
from launcher.train import state as trainer_state
from launcher.train.resolve import limit_batches, move_to_device, resolve_loaders
from launcher.train.results import Results
from launcher.train.sampler import make_resumable

_LOADER_HOOK = {"validate": "val_dataloader", "test": "test_dataloader"}


def run_eval(trainer: Any, stage: str, loader: Any, limit: int | float) -> dict[str, torch.Tensor]:
    """One epoch of `stage` ("validate" or "test") over at most `limit` batches."""
    model = trainer.module
    hook_stage = "validation" if stage == "validate" else "test"
    step_fn = getattr(model, f"{hook_stage}_step", None)
    if step_fn is None or limit == 0:
        return {}
    previous = trainer._results
    results = trainer._results = Results(stage, trainer.dist.all_reduce)
    was_training = model.training
    model.eval()
    trainer._call(f"on_{hook_stage}_epoch_start")
    with torch.no_grad():
        for batch_idx, batch in enumerate(loader):
            if batch_idx >= limit:
                break
            batch = move_to_device(batch, trainer.device)
            results.batch = batch
            with trainer.precision.forward_context():
                output = step_fn(batch, batch_idx)
            trainer._call(f"on_{hook_stage}_batch_end", output, batch, batch_idx)
    metrics = results.epoch_metrics()
    trainer._eval_logger_names = results.names("logger")
    trainer._eval_prog_names = results.names("prog_bar")
    trainer.callback_metrics.update(results.with_plain_names(metrics))
    trainer._call(f"on_{hook_stage}_epoch_end")
    trainer._results = previous
    model.train(was_training)
    return metrics


def evaluate(trainer: Any, stage: str, model: Any, dataloaders: Any, datamodule: Any,
             ckpt_path: str | None) -> list[dict[str, float]]:  # fmt: skip
    """`Trainer.validate` / `Trainer.test`: set up, optionally load weights, run, log, report."""
    trainer._start(stage, model, datamodule)
    try:
        loader = resolve_loaders(trainer, model, datamodule, None, dataloaders, stage=stage)[1]
        if loader is None:
            raise UserError(f"{stage}: no dataloader; define {_LOADER_HOOK[stage]}()")
        loader = make_resumable(loader, 0, trainer.global_rank, trainer.world_size, shuffle=False)
        if ckpt_path:
            trainer_state.load_weights(trainer, ckpt_path)
        limit = trainer.limit_val_batches if stage == "validate" else trainer.limit_test_batches
        metrics = run_eval(trainer, stage, loader, limit_batches(loader, limit))
        values = {k: float(v) for k, v in metrics.items()}
        trainer.log_metrics(values)
        if trainer.is_global_zero and values and trainer.enable_progress_bar:
            print(f"{stage}: " + "  ".join(f"{k}={v:.4g}" for k, v in sorted(values.items())))
        return [values]
    finally:
        trainer._end(stage)
