"""`Trainer(compile=True | "blocks")`: `torch.compile` on the model's forward, or on each block's.

    mode = parse_compile("blocks")                  # "model" | "blocks" | None
    compile_module(module, mode, block_names=None)  # in place, before DDP/FSDP wrap it

What is compiled is a `forward` (the Module's, or each repeated block's: the rule FSDP uses,
`fsdp.find_blocks`), so `training_step` stays eager: `self.log` and the hooks run outside the
compiled graph and break nothing. The compiled forward replaces the instance's `forward`,
as Lightning's `from_compiled` does: module hooks (FSDP2's gather/reshard) still run eagerly
around it, and `state_dict` keys keep their names (no `_orig_mod.`). Order, per PyTorch's
docs: compiled here, then wrapped; DDP's forward is active when the compiled frame first
runs, so Dynamo's DDPOptimizer splits the graph at DDP's bucket boundaries and the gradient
all-reduces overlap the backward; FSDP2 shards the compiled blocks (as torchtitan). Dim 0 of
every tensor argument is marked dynamic, so the smaller last batch reuses the graph instead of
compiling another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from launcher.errors import UserError
from launcher.train.names import COMPILE_MODES

# Trainer(compile=) and --compile's words (train/names.py) -> the mode.
MODES: dict[bool | str | None, str | None] = {
    True: "model", False: None, None: None, "true": "model", "false": None,
    **{word: None if word == "off" else word for word in COMPILE_MODES},
}  # fmt: skip


def parse_compile(value: Any) -> str | None:
    """`compile=` -> "model", "blocks" or None (off); anything else is a `UserError`."""
    key = value.lower() if isinstance(value, str) else value
    if not isinstance(key, (bool, str, type(None))) or key not in MODES:
        raise UserError(f"compile={value!r}: use compile=True (the model's forward), "
                        "compile='blocks' (each repeated block, as torchtitan) or False")  # fmt: skip
    return MODES[key]


def compile_module(module: nn.Module, mode: str | None, block_names: tuple[str, ...] | None,
                   fsdp: bool = False) -> None:  # fmt: skip
    """Compile `module`'s forward ("model") or each block's ("blocks"), in place. Idempotent."""
    from launcher.train.fsdp import find_blocks

    if mode is None:
        return
    if mode == "model":
        if fsdp:
            raise UserError("compile=True with strategy='fsdp': FSDP gathers each block's "
                            "parameters in hooks inside the model's forward, which would break "
                            "its graph at every block; use compile='blocks' (compiled blocks, "
                            "then sharded, as torchtitan does)")  # fmt: skip
        if type(module).forward is nn.Module.forward:
            raise UserError(f"compile=True compiles {type(module).__name__}.forward, which it "
                            "does not define; define forward() and call self(x) in "
                            "training_step, or use compile='blocks'")  # fmt: skip
        _compile_forward(module)
        return
    blocks = find_blocks(module, block_names)
    if not blocks:
        raise UserError(f"compile='blocks': {type(module).__name__} holds no nn.ModuleList "
                        "whose children would be the blocks; name the block classes with "
                        "fsdp_blocks=['Block'] under strategy='fsdp', or use compile=True")  # fmt: skip
    for block in blocks:
        _compile_forward(block)


def unwrap_compiled(model: Any) -> Any:
    """`torch.compile(model)` handed to fit/validate/test/predict: the model itself, its
    forward compiled with the same settings (Lightning's `from_compiled`; the step methods
    stay eager here, so `self.log` breaks no graph). Anything else comes back unchanged."""
    from torch._dynamo.eval_frame import OptimizedModule

    if not isinstance(model, OptimizedModule):
        return model
    original = model.get_submodule("_orig_mod")  # torch's public way to reach it
    _compile_forward(original, model.dynamo_ctx)
    return original


def compiled_modules(module: nn.Module) -> list[str]:
    """The names of `module`'s submodules whose forward is compiled ("" is `module` itself)."""
    return [name for name, m in module.named_modules()
            if isinstance(vars(m).get("forward"), CompiledForward)]  # fmt: skip


class CompiledForward:
    """A module's compiled forward, set as its instance `forward`: the class's `forward`
    compiled, called with dim 0 of its tensor arguments marked dynamic (outside the compiled
    frame). It holds its module rather than a bound method, so a `deepcopy` of the model
    (StochasticWeightAveraging's average) runs the copy's weights, not the original's."""

    def __init__(self, module: nn.Module, compiled: Callable[..., Any]) -> None:
        self.module, self.compiled = module, compiled

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                torch._dynamo.maybe_mark_dynamic(value, 0)  # noqa: SLF001 (torch's public API)
        return self.compiled(self.module, *args, **kwargs)


def _compile_forward(module: nn.Module, compiler: Callable[..., Any] = torch.compile) -> None:
    if isinstance(vars(module).get("forward"), CompiledForward):
        return  # idempotent: fit, then validate
    compiled = compiler(type(module).forward)
    object.__setattr__(module, "forward", CompiledForward(module, compiled))
