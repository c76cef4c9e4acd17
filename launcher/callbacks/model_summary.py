"""`ModelSummary`: the table of a model's layers and parameter counts printed when fit starts.

    Trainer(enable_model_summary=True)               # the default: adds ModelSummary()
    Trainer(callbacks=[ModelSummary(max_depth=2)])   # nested layers too

Like Lightning's: one row per submodule down to `max_depth` (name, type, parameters, mode),
then trainable / non-trainable / total counts and the parameters' size in MB. Rank 0 prints.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from launcher.callbacks.base import Callback

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer


UNKNOWN_SIZE = "?"


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(n)


def _shape(value: Any) -> Any:
    """Lightning's `parse_batch_shape`: a tensor's shape as a list, nested for tuples."""
    if hasattr(value, "shape"):
        return list(value.shape)
    if isinstance(value, (list, tuple)):
        return [_shape(v) for v in value]
    return UNKNOWN_SIZE


def layer_sizes(model: nn.Module, layers: list[tuple[str, nn.Module]],
                example: Any) -> dict[str, tuple[Any, Any]]:  # fmt: skip
    """name -> (input size, output size) of each layer's first call on `example`, which runs
    through `model` in eval mode without gradients (as Lightning's summary does)."""
    from launcher.train.resolve import move_to_device

    sizes: dict[str, tuple[Any, Any]] = {}
    handles = []
    for name, layer in layers:

        def hook(_: nn.Module, args: Any, kwargs: Any, out: Any, name: str = name) -> None:
            inputs = (*args, *kwargs.values())
            if name not in sizes:
                sizes[name] = (_shape(inputs[0] if len(inputs) == 1 else inputs), _shape(out))

        handles.append(layer.register_forward_hook(hook, with_kwargs=True))
    modes = {m: m.training for m in model.modules()}
    from launcher.train.module import Module

    context: AbstractContextManager[Any] = nullcontext()
    if isinstance(model, Module):  # under a Trainer the forward runs in its precision
        try:
            context = model.trainer.precision.forward_context()
        except RuntimeError:  # no Trainer attached
            pass
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    example = move_to_device(example, device)
    model.eval()
    try:
        with torch.no_grad(), context:
            if isinstance(example, (list, tuple)):
                model(*example)
            elif isinstance(example, dict):
                model(**example)
            else:
                model(example)
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes.items():
            m.train(training)
    return sizes


def summarize(model: nn.Module, max_depth: int = 1) -> str:
    """The summary table of `model`, as `ModelSummary` prints it.

    print(summarize(model, max_depth=1))

    A model with an `example_input_array` gets Lightning's "In sizes" / "Out sizes" columns.
    """
    layers = [(n, m) for n, m in model.named_modules()
              if n and max_depth != 0 and (max_depth < 0 or n.count(".") < max_depth)]  # fmt: skip
    example = getattr(model, "example_input_array", None)
    sizes = layer_sizes(model, layers, example) if example is not None and layers else None
    header = ["", "Name", "Type", "Params", "Mode"]
    if sizes is not None:
        header += ["In sizes", "Out sizes"]
    rows = [tuple(header)]
    for i, (name, sub) in enumerate(layers):
        params = sum(p.numel() for p in sub.parameters())
        mode = "train" if sub.training else "eval"
        row = [str(i), name, type(sub).__name__, _count(params), mode]
        if sizes is not None:
            in_size, out_size = sizes.get(name, (UNKNOWN_SIZE, UNKNOWN_SIZE))
            row += [str(in_size), str(out_size)]
        rows.append(tuple(row))
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
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


class RichModelSummary(ModelSummary):
    """Lightning's `RichModelSummary`: the same table as `ModelSummary` (plain text here)."""
