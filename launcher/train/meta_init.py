"""Meta-device initialisation: a model built under `torch.device("meta")` in `configure_model()`.

    with torch.device("meta"):       # in configure_model: no memory until sharded
        self.blocks = nn.ModuleList(Block(...) for _ in range(48))
    # the Trainer, after sharding (strategy="fsdp") or before DDP wraps the model:
    materialize(model, device)       # to_empty, then each module's reset_parameters()

As torchtitan and Lightning's ModelParallelStrategy: storage comes only once each rank holds
its shards, then every module with parameters or buffers of its own re-initialises them with
`reset_parameters()`; one without it is a `UserError`. Under FSDP each rank initialises its
own shards, so the values differ from one unsharded init with the same seed.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from launcher.errors import UserError


def has_meta_tensors(module: nn.Module) -> bool:
    """Whether any parameter or buffer of `module` lives on the meta device."""
    return any(t.is_meta for t in itertools.chain(module.parameters(), module.buffers()))


def to_device(module: nn.Module, device: torch.device) -> None:
    """`module.to(device)`, unless it holds meta tensors (`materialize` places those)."""
    if not has_meta_tensors(module):
        module.to(device)


def materialize(module: nn.Module, device: torch.device) -> None:
    """Give a model with meta tensors storage on `device` and initialise it; else a no-op."""
    if not has_meta_tensors(module):
        return
    missing = sorted({type(m).__name__ for m in module.modules() if _owns_tensors(m)
                      and not callable(getattr(m, "reset_parameters", None))})  # fmt: skip
    if missing:
        raise UserError(
            f"configure_model() built the model on the meta device, but {', '.join(missing)} "
            "cannot initialise itself: give each a reset_parameters() method that fills its "
            "own parameters and buffers, or build those modules on a real device"
        )
    module.to_empty(device=device)  # on the root: FSDP re-points its shards here
    with torch.no_grad():
        for m in module.modules():
            if _owns_tensors(m):
                m.reset_parameters()  # type: ignore[operator]


def _owns_tensors(module: nn.Module) -> bool:
    return any(True for _ in itertools.chain(module.parameters(recurse=False),
                                            module.buffers(recurse=False)))  # fmt: skip
