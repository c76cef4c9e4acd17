"""Manual optimization (`automatic_optimization = False`): the model steps its own optimizers.

    class GAN(Module):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            g_opt, d_opt = self.optimizers()          # LightningOptimizer wrappers
            d_opt.zero_grad()
            self.manual_backward(d_loss)              # precision- and DDP-aware backward
            d_opt.step()                              # on_before_optimizer_step, one global step
            ...

As in Lightning 2.x, the Trainer then only calls `training_step`: no zero_grad, backward,
clipping, optimizer or scheduler step of its own; `gradient_clip_val` and
`accumulate_grad_batches` are errors (`check_config`). Each `LightningOptimizer.step()` counts
one global step, so a GAN's two steps per batch advance `global_step` by 2; loggers and the
periodic checkpoint/signal checks count batches (`LoopState.batches_stepped`), as Lightning's
loggers do.

Under DDP the forward still runs inside DDP's wrapper (its buffer broadcast), with DDP's own
gradient hooks off; `manual_backward` then averages, over the ranks, the gradients that this
backward produced, before `on_after_backward` (so hooks, clipping and the step see the
synchronized gradients, as with DDP's reducer). This works for any number of backward passes
per step and any parameters left out of one, which DDP's reducer does not.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer


def check_config(trainer: Trainer, model: Module) -> None:
    """Lightning's checks of the Trainer settings manual optimization cannot honour."""
    if model.automatic_optimization:
        return
    clip = trainer.gradient_clip_val
    if clip is not None and clip > 0:
        raise UserError(
            "Automatic gradient clipping is not supported for manual optimization. Remove "
            f"`Trainer(gradient_clip_val={clip})` or switch to automatic optimization; to clip "
            "by hand, call self.clip_gradients(opt, gradient_clip_val=..., "
            'gradient_clip_algorithm="norm") in training_step before opt.step().'
        )
    accumulate = trainer.accumulate_grad_batches
    if accumulate != 1:
        raise UserError(
            "Automatic gradient accumulation is not supported for manual optimization. Remove "
            f"`Trainer(accumulate_grad_batches={accumulate})` or switch to automatic "
            "optimization; to accumulate by hand, call opt.step() and opt.zero_grad() only "
            "every N batches in training_step."
        )


def warn_ignored_scheduler_keys(trainer: Trainer, model: Module) -> None:
    """Lightning's warning: under manual optimization nothing reads a scheduler's monitor."""
    if model.automatic_optimization:
        return
    if any(config.monitor for config in trainer.lr_scheduler_configs):
        warnings.warn(
            "The lr scheduler dict contains the key(s) ['monitor'], but the keys will be "
            "ignored. You need to call `lr_scheduler.step()` manually in manual optimization.",
            RuntimeWarning,
            stacklevel=3,
        )


def training_step_output(output: Any) -> dict[str, Any]:
    """What `on_train_batch_end` gets under manual optimization (Lightning's `ManualResult`):
    a dict, `{"loss": tensor}` for a tensor, `{}` for None; the loss detached."""
    if isinstance(output, Mapping):
        extra = dict(output)
    elif isinstance(output, torch.Tensor):
        extra = {"loss": output}
    elif output is None:
        extra = {}
    else:
        raise UserError(
            "In manual optimization, `training_step` must either return a Tensor or have no "
            f"return (it returned a {type(output).__name__})."
        )
    if isinstance(extra.get("loss"), torch.Tensor):
        extra["loss"] = extra["loss"].detach()
    return extra


def step_function(fn: Callable[..., Any]) -> Callable[[Any, int], Any]:
    """`fn(batch, batch_idx)`, or `fn(batch)` when its signature has no room for batch_idx
    (Lightning's `is_param_in_hook_signature(fn, "batch_idx", min_args=2)`)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return fn
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if (
        any(p.name == "batch_idx" for p in params)
        or any(p.kind == p.VAR_POSITIONAL for p in params)
        or len(positional) >= 2
    ):
        return fn
    return lambda batch, _batch_idx: fn(batch)


def unwrap(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside a `LightningOptimizer` (or the optimizer itself)."""
    return optimizer.optimizer if isinstance(optimizer, LightningOptimizer) else optimizer


class ManualOptimization:
    """The Trainer's side of `self.optimizers()`, `manual_backward` and `opt.step()`.

    `trainer.manual_optimization`; `setup()` wraps the optimizers once per `fit`, so
    `self.optimizers()` returns the same wrappers every call.
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.lightning_optimizers: list[LightningOptimizer] = []
        self.sync_gradients = True  # False inside `toggle_model(sync_grad=False)`

    def setup(self) -> None:
        self.lightning_optimizers = [LightningOptimizer(o, self) for o in self.trainer.optimizers]

    @property
    def manual(self) -> bool:
        return not self.trainer.module.automatic_optimization

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """`manual_backward`: hooks, the precision's (scaled) backward, gradient averaging."""
        trainer = self.trainer
        if not self.manual:
            raise UserError(
                "to use manual_backward, please disable automatic optimization: set model "
                "property `automatic_optimization` as False"
            )
        trainer.call_hook("on_before_backward", loss)
        if trainer.world_size > 1 and self.sync_gradients:
            with _record_new_gradients(trainer.module) as produced:
                trainer.precision.backward(loss, *args, **kwargs)
            trainer.dist.average_gradients(produced)
        else:
            trainer.precision.backward(loss, *args, **kwargs)
        trainer.call_hook("on_after_backward")

    def optimizer_step(
        self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any] | None, **kwargs: Any
    ) -> Any:
        """`LightningOptimizer.step`: closure, unscale, `on_before_optimizer_step`, step."""
        trainer = self.trainer
        if closure is not None and not callable(closure):
            raise UserError(
                "When `optimizer.step(closure)` is called, the closure should be callable"
            )

        def before_step() -> None:
            trainer.call_hook("on_before_optimizer_step", optimizer)

        result = trainer.precision.closure_step(optimizer, closure or _nothing, before_step,
                                                **kwargs)  # fmt: skip
        if self.manual:  # Lightning counts each step of a wrapped optimizer as a global step
            trainer.loop.global_step += 1
        return result

    @contextlib.contextmanager
    def blocked_sync(self, block: bool) -> Iterator[None]:
        """No gradient averaging in `manual_backward` while `block` (accumulating)."""
        previous = self.sync_gradients
        self.sync_gradients = previous and not block
        try:
            yield
        finally:
            self.sync_gradients = previous

    def clip_gradients(
        self, optimizer: Any, gradient_clip_val: float | None,
        gradient_clip_algorithm: str | None,
    ) -> None:  # fmt: skip
        """`Module.clip_gradients`, with Lightning's checks against the Trainer's settings."""
        trainer = self.trainer
        configured = trainer.gradient_clip_val
        if gradient_clip_val is None:
            gradient_clip_val = configured or 0.0
        elif configured is not None and configured != gradient_clip_val:
            raise UserError(
                f"You have set `Trainer(gradient_clip_val={configured!r})` and have passed "
                f"`clip_gradients(gradient_clip_val={gradient_clip_val!r})`. Please use only one "
                "of them."
            )
        if gradient_clip_algorithm is None:
            gradient_clip_algorithm = trainer.gradient_clip_algorithm or "norm"
        else:
            gradient_clip_algorithm = gradient_clip_algorithm.lower()
            if (
                configured is not None
                and trainer.gradient_clip_algorithm != gradient_clip_algorithm
            ):
                raise UserError(
                    f"You have set `Trainer(gradient_clip_algorithm="
                    f"{trainer.gradient_clip_algorithm!r})` and have passed `clip_gradients("
                    f"gradient_clip_algorithm={gradient_clip_algorithm!r})`. Please use only one "
                    "of them."
                )
        if not isinstance(gradient_clip_val, (int, float)):
            raise TypeError(
                f"`gradient_clip_val` should be an int or a float. Got {gradient_clip_val}."
            )
        if gradient_clip_algorithm not in ("norm", "value"):
            raise UserError(
                f"`gradient_clip_algorithm` {gradient_clip_algorithm} is invalid. Allowed "
                "algorithms: ['value', 'norm']."
            )
        if gradient_clip_val <= 0:
            return
        raw = unwrap(optimizer)
        trainer.precision.unscale(raw)  # clip true gradients, not fp16-scaled ones
        params = [p for group in raw.param_groups for p in group["params"]]
        if gradient_clip_algorithm == "value":
            nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            nn.utils.clip_grad_norm_(params, gradient_clip_val)


def _nothing() -> None:
    return None


@contextlib.contextmanager
def _record_new_gradients(module: nn.Module) -> Iterator[list[nn.Parameter]]:
    """The parameters (in model order) whose `.grad` a backward inside the block wrote."""
    touched: set[int] = set()
    params = [p for p in module.parameters() if p.requires_grad]
    handles = [p.register_post_accumulate_grad_hook(lambda p: touched.add(id(p))) for p in params]
    produced: list[nn.Parameter] = []
    try:
        yield produced
    finally:
        for handle in handles:
            handle.remove()
    produced.extend(p for p in params if id(p) in touched)


class LightningOptimizer:
    """Lightning's optimizer wrapper, what `self.optimizers()` returns.

    opt = self.optimizers()
    opt.zero_grad()
    self.manual_backward(loss)
    opt.step()                      # or opt.step(closure=fn): fn runs first (backward)
    with opt.toggle_model(sync_grad=False): ...   # only opt's parameters get gradients

    An instance of the wrapped optimizer's class too (`isinstance(opt, torch.optim.Adam)`);
    anything else (`param_groups`, `state`, ...) is the wrapped optimizer's.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, owner: ManualOptimization) -> None:
        self._optimizer = optimizer
        self._owner = owner
        # imitate the wrapped object's class, as Lightning does, so isinstance checks work
        cls = type(optimizer)
        self.__class__ = type("Lightning" + cls.__name__, (LightningOptimizer, cls), {})

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self._optimizer.param_groups

    @property
    def state(self) -> Any:
        return self._optimizer.state

    @property
    def defaults(self) -> dict[str, Any]:
        return self._optimizer.defaults

    def step(self, closure: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
        """One optimizer step through the precision (GradScaler under 16-mixed); a closure
        runs first, then `on_before_optimizer_step`. Under manual optimization: a global step."""
        return self._owner.optimizer_step(self._optimizer, closure, **kwargs)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self._optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._optimizer.load_state_dict(state_dict)

    @contextlib.contextmanager
    def toggle_model(self, sync_grad: bool = True) -> Iterator[None]:
        """Only this optimizer's parameters require grad inside; `sync_grad=False` skips the
        gradient all-reduce of backward passes inside (while accumulating)."""
        owner = self._owner
        module = owner.trainer.module
        with owner.blocked_sync(not sync_grad):
            module.toggle_optimizer(self)
            try:
                yield
            finally:
                module.untoggle_optimizer(self)

    def __getattr__(self, item: str) -> Any:
        if item in ("_optimizer", "_owner"):  # not set yet (copy, unpickling): no recursion
            raise AttributeError(item)
        return getattr(self._optimizer, item)

    def __repr__(self) -> str:
        return f"Lightning{self._optimizer!r}"
