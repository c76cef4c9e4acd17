"""`strategy="fsdp"`: FSDP2 (`torch.distributed.fsdp.fully_shard`) sharding and its checkpoint parts.

    settings = FSDPSettings.parse("fsdp", blocks=["Block"], reshard_after_forward=True)
    module = shard(module, settings, precision="bf16-mixed", device=device)   # in place
    ModelState(module, source), OptimizerState(module, optimizer)           # checkpoint parts

Blocks are sharded first, then the root (the `Module` itself): what `configure_model()`
already sharded is kept; else the classes `fsdp_blocks` names; else the children of every
`nn.ModuleList`. The step methods (`training_step`, `validation_step`, ...) are FSDP forward
methods, so the root's parameters are gathered whichever of them the loop calls. Resume
checkpoints are sharded by default (`sharded_checkpoint.py`: every rank writes its shards);
the parts here gather the full state dicts (rank 0 keeps them) for ModelCheckpoint's files
and `checkpoint_format="full"`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn

from launcher.errors import UserError

_STEP_METHODS = ("training_step", "validation_step", "test_step", "predict_step")
# Precisions whose dtype FSDP's MixedPrecisionPolicy applies: (parameters, gradient reduction).
_MIXED = {"bf16-mixed": (torch.bfloat16, torch.float32)}
# Those it cannot honour yet: the fp16 GradScaler's inf check would need every rank's shards.
_REFUSED = ("16-mixed", "fp8")


@dataclass(frozen=True)
class FSDPSettings:
    """The Trainer's FSDP settings: `fsdp_blocks` (class names), `fsdp_reshard_after_forward`
    and `fsdp_cpu_offload` (shards, gradients and the optimizer step on the CPU)."""

    blocks: tuple[str, ...] | None = None
    reshard_after_forward: bool = True
    cpu_offload: bool = False

    @classmethod
    def parse(cls, strategy: str, blocks: list[str] | None, reshard_after_forward: bool = True,
              cpu_offload: bool = False) -> FSDPSettings | None:  # fmt: skip
        """The settings under `strategy="fsdp"`, else None (FSDP settings then are an error)."""
        if strategy != "fsdp":
            given = {"fsdp_blocks": blocks is not None, "fsdp_cpu_offload": cpu_offload,
                     "fsdp_reshard_after_forward": not reshard_after_forward}  # fmt: skip
            unused = [name for name, set_ in given.items() if set_]
            if unused:
                raise UserError(f"{', '.join(unused)}: settings of strategy='fsdp', but strategy "
                                f"is {strategy!r}; pass strategy='fsdp' or drop them")  # fmt: skip
            return None
        if blocks is not None and (isinstance(blocks, str) or not all(
            isinstance(b, str) for b in blocks
        )):  # fmt: skip
            raise UserError(f"fsdp_blocks must be a list of class names, got {blocks!r}")
        names = None if blocks is None else tuple(blocks)
        return cls(names, bool(reshard_after_forward), bool(cpu_offload))


def is_sharded(module: nn.Module) -> bool:
    """Whether `module` (or one of its submodules) has been sharded with `fully_shard`."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in module.modules())


def _fsdp_modules(module: nn.Module) -> Iterator[nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return (m for m in module.modules() if isinstance(m, FSDPModule))


def find_blocks(module: nn.Module, names: tuple[str, ...] | None) -> list[nn.Module]:
    """The modules to shard one by one: of the classes `names`, else every `nn.ModuleList`'s
    children. An unknown class name is a `UserError` listing the classes present."""
    if names is None:
        lists = [m for m in module.modules() if isinstance(m, nn.ModuleList)]
        return [child for lst in lists for child in lst.children()]
    present = {type(m).__name__ for m in module.modules()}
    unknown = [n for n in names if n not in present]
    if unknown:
        raise UserError(
            f"fsdp_blocks names {unknown}, which the model does not hold; its module classes "
            f"are: {', '.join(sorted(present))}. Name the repeated block classes (e.g. "
            "fsdp_blocks=['TransformerBlock']), or leave fsdp_blocks unset to shard the "
            "children of every nn.ModuleList."
        )
    return [m for m in module.modules() if type(m).__name__ in names and m is not module]


def shard(module: Any, settings: FSDPSettings, precision: str, device: torch.device,
          mesh: Any = None) -> Any:  # fmt: skip
    """Shard `module` in place with FSDP2 over `mesh` (default: every rank): its blocks, then
    itself as the root. Idempotent."""
    from torch.distributed.fsdp import (
        CPUOffloadPolicy,
        FSDPModule,
        MixedPrecisionPolicy,
        fully_shard,
    )

    if isinstance(module, FSDPModule):
        return module  # sharded by an earlier stage
    if precision in _REFUSED:
        raise UserError(f"precision={precision!r} does not work with strategy='fsdp' yet; use "
                        "precision='bf16-mixed' (or '32-true'), or strategy='ddp'")  # fmt: skip
    if not getattr(module, "automatic_optimization", True):
        raise UserError("manual optimization (automatic_optimization = False) does not work "
                        "with strategy='fsdp' yet; use strategy='ddp', or automatic optimization")  # fmt: skip
    mesh = _mesh(module, device, mesh)
    policy = MixedPrecisionPolicy(*_MIXED[precision]) if precision in _MIXED else None
    kwargs: dict[str, Any] = {"mesh": mesh}
    if policy is not None:
        kwargs["mp_policy"] = policy
    if settings.cpu_offload:  # pinned host memory only where there is a GPU to copy to
        kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=device.type == "cuda")
    by_user = is_sharded(module)  # configure_model() sharded by hand: keep its blocks
    if not by_user:
        _broadcast_from_rank0(module)  # as DDP: every rank starts from rank 0's weights
        blocks = find_blocks(module, settings.blocks)
        # Innermost first: fully_shard of a block that holds another block would claim its
        # parameters.
        for block in sorted(blocks, key=_depth(module), reverse=True):
            fully_shard(block, reshard_after_forward=settings.reshard_after_forward, **kwargs)
    fully_shard(module, **kwargs)  # the root keeps its parameters gathered for backward
    for name in _STEP_METHODS:
        if callable(getattr(module, name, None)):
            _register_step(module, name)
    return module


def data_parallel_mesh(device: torch.device) -> Any:
    """Lightning's ModelParallelStrategy mesh, `Module.device_mesh` under strategy="fsdp":
    dims ("data_parallel", "tensor_parallel") of sizes (world size, 1); FSDP shards over
    `mesh["data_parallel"]`."""
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device.type, (torch_dist.get_world_size(), 1),
                            mesh_dim_names=("data_parallel", "tensor_parallel"))  # fmt: skip


def _mesh(module: nn.Module, device: torch.device, mesh: Any) -> Any:
    """The mesh of what `configure_model()` sharded, else `mesh`, else one over every rank."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    for p in module.parameters():
        if isinstance(p, DTensor):
            return p.device_mesh
    if mesh is not None:
        return mesh
    return init_device_mesh(device.type, (torch_dist.get_world_size(),))


def _depth(root: nn.Module) -> Callable[[nn.Module], int]:
    depth = {id(m): name.count(".") + bool(name) for name, m in root.named_modules()}
    return lambda m: depth[id(m)]


def _broadcast_from_rank0(module: nn.Module) -> None:
    if torch_dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.device.type != "meta":
                torch_dist.broadcast(tensor.data, src=0)


def _register_step(module: Any, name: str) -> None:
    """`module.<name>` runs FSDP's root pre/post-forward; without grad (evaluation) the root
    reshards afterwards: FSDP keeps the root gathered for a backward that never comes."""
    from torch.distributed.fsdp import register_fsdp_forward_method

    signature = inspect.signature(getattr(module, name))  # step_function reads batch_idx
    register_fsdp_forward_method(module, name)
    patched = getattr(module, name)

    @functools.wraps(patched)
    def step(*args: Any, **kwargs: Any) -> Any:
        try:
            return patched(*args, **kwargs)
        finally:
            if not torch.is_grad_enabled():
                for m in _fsdp_modules(module):
                    m.reshard()  # type: ignore[operator]

    step.__signature__ = signature  # type: ignore[attr-defined]
    setattr(module, name, step)


def no_sync(module: nn.Module, skip_sync: bool) -> contextlib.AbstractContextManager:
    """Accumulate without the reduce-scatter on a non-final micro-step."""
    return _SkipGradientSync(module) if skip_sync else contextlib.nullcontext()


class _SkipGradientSync(contextlib.AbstractContextManager):
    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.module.set_requires_gradient_sync(False)  # type: ignore[operator]

    def __exit__(self, *exc: object) -> None:
        self.module.set_requires_gradient_sync(True)  # type: ignore[operator]


def _options(**kw: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


class ModelState:
    """The model's checkpoint part: the full state dict (rank 0 keeps it, on the CPU)."""

    collective = True

    def __init__(self, module: nn.Module, source: str = "") -> None:
        self.module, self.source = module, source

    def state_dict(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.module, options=_options(cpu_offload=True))

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        try:
            set_model_state_dict(self.module, state, options=_options())
        except (RuntimeError, KeyError, ValueError) as exc:
            raise UserError(
                f"the model no longer matches checkpoint {self.source}:\n{exc}\n"
                "Resume with the original hyperparameters, or start fresh with --no-resume."
            ) from exc


class OptimizerState:
    """An optimizer's checkpoint part: its full state, keyed by parameter name (rank 0)."""

    collective = True

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.module, self.optimizer = module, optimizer

    def state_dict(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(
            self.module, self.optimizer, options=_options(cpu_offload=True)
        )

    def load_state_dict(self, state: dict[str, Any], /) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(self.module, self.optimizer, state, options=_options())


def optimizer_parts(module: nn.Module, optimizers: list[torch.optim.Optimizer]) -> list[Any]:
    """The optimizers' checkpoint parts: themselves, or `OptimizerState`s when sharded."""
    if not is_sharded(module):
        return list(optimizers)
    return [OptimizerState(module, opt) for opt in optimizers]
