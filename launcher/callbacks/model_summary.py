"""`ModelSummary`: the table of a model's layers and parameter counts printed when fit starts.

    Trainer(enable_model_summary=True)               # the default: adds ModelSummary()
    Trainer(callbacks=[ModelSummary(max_depth=2)])   # nested layers too

Like Lightning's: one row per submodule down to `max_depth` (name, type, parameters, mode),
then trainable / non-trainable / total counts and the parameters' size in MB. Rank 0 prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from launcher.callbacks.base import Callback

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(n)


def summarize(model: nn.Module, max_depth: int = 1) -> str:
    """The summary table of `model`, as `ModelSummary` prints it.

    print(summarize(model, max_depth=1))
    """
    rows = [("", "Name", "Type", "Params", "Mode")]
    if max_depth != 0:
        for i, (name, sub) in enumerate(
            (n, m)
            for n, m in model.named_modules()
            if n and (max_depth < 0 or n.count(".") < max_depth)
        ):
            params = sum(p.numel() for p in sub.parameters())
            mode = "train" if sub.training else "eval"
            rows.append((str(i), name, type(sub).__name__, _count(params), mode))
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    lines = [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    rule = "-" * max(len(line) for line in lines)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
    modes = [m.training for m in model.modules()]
    totals = [
        f"{_count(trainable):<10}Trainable params",
        f"{_count(total - trainable):<10}Non-trainable params",
        f"{_count(total):<10}Total params",
        f"{size_mb:<10.3f}Total estimated model params size (MB)",
        f"{sum(modes):<10}Modules in train mode",
        f"{len(modes) - sum(modes):<10}Modules in eval mode",
    ]
    table = [lines[0], rule, *lines[1:], rule] if len(lines) > 1 else []
    return "\n".join([*table, *totals])


class ModelSummary(Callback):
    """Prints the model's summary on global rank 0 when `fit` starts (Lightning's callback)."""

    def __init__(self, max_depth: int = 1) -> None:
        self.max_depth = max_depth

    def on_fit_start(self, trainer: Trainer, module: Module) -> None:
        if trainer.is_global_zero:
            print(summarize(module, self.max_depth), flush=True)
