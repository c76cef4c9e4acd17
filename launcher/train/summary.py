"""The few lines a launched run ends with: what happened, what came out, where to look next.

    lines = run_summary(trainer, "FINISHED", seconds=83.2, name="digits-lr0.01")
    # run digits-lr0.01 FINISHED in 1m 23s: 90 steps, 2 epochs
    #   val_loss 0.1497 (best 0.1497, epoch 1)  val_acc 0.9638
    #   best checkpoint: outputs/digits/digits-lr0.01/checkpoints/epoch=1-step=90.ckpt
    #   run dir: outputs/digits/digits-lr0.01
    #   MLflow run 3f2a9c1d...: launch ui --output-dir outputs
    #   compare: launch runs --output-dir outputs; launch compare digits-lr0.01 OTHER_RUN

Printed by the worker on global rank 0 once `fit` returns, so it ends the console of a local
run and the log of a SLURM or Ray one alike. Reads only public trainer and callback state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from launcher.train.trainer import Trainer


def run_summary(trainer: Trainer, status: str, seconds: float, name: str) -> list[str]:
    """The summary's lines (see the module doc); no line is longer than it needs to be."""
    epochs = trainer.current_epoch
    head = (f"run {name} {status} in {duration(seconds)}: {trainer.global_step} steps, "
            f"{epochs} epoch{'s' if epochs != 1 else ''}")  # fmt: skip
    lines = [head]
    metrics = _metric_line(trainer)
    if metrics:
        lines.append(f"  {metrics}")
    callback = trainer.checkpoint_callback
    if callback is not None and callback.best_model_path:
        lines.append(f"  best checkpoint: {callback.best_model_path}")
    if trainer.run_dir:
        lines.append(f"  run dir: {trainer.run_dir}")
    from launcher.loggers.mlflow import MLflowLogger  # loaded already when a run logs to it

    output_dir = str(Path(trainer.default_root_dir))
    for lg in trainer.loggers:
        run_id = lg.known_run_id if isinstance(lg, MLflowLogger) else None
        if isinstance(lg, MLflowLogger) and run_id:
            uri = lg.tracking_uri
            where = uri if uri.startswith(("http://", "https://")) else (
                f"launch ui --output-dir {output_dir}"
            )  # fmt: skip
            lines.append(f"  MLflow run {run_id}: {where}")
            lines.append(f"  compare: launch runs --output-dir {output_dir}; "
                         f"launch compare {name} OTHER_RUN")  # fmt: skip
    return lines


def duration(seconds: float) -> str:
    """`83.2` -> "1m 23s", `5.04` -> "5.0s", `7384` -> "2h 3m"."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _metric_line(trainer: Trainer) -> str:
    """Monitored metrics first (with ModelCheckpoint's best), then the progress-bar ones."""
    values = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    callback = trainer.checkpoint_callback
    monitored = [m for c in trainer.callbacks if isinstance(m := getattr(c, "monitor", None), str)]
    shown: list[str] = []
    parts: list[str] = []
    for key in [*dict.fromkeys(monitored), *sorted(trainer.progress_bar_metrics)]:
        if key in shown or key not in values or not math.isfinite(values[key]):
            continue
        shown.append(key)
        text = f"{key} {values[key]:.4g}"
        if (
            callback is not None
            and key == callback.monitor
            and callback.best_model_score is not None
        ):
            text += f" (best {float(callback.best_model_score):.4g})"
        parts.append(text)
        if len(parts) == 4:  # a summary, not a table: `launch runs` has the rest
            break
    return "  ".join(parts)
