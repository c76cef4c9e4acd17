"""`LambdaCallback`: a callback made of functions, one per hook (Lightning's).

    LambdaCallback(on_train_epoch_end=lambda trainer, module: print(trainer.current_epoch))

Each function takes the hook's arguments, `(trainer, module, *args)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from launcher.callbacks.base import HOOKS, Callback


class LambdaCallback(Callback):
    """A callback whose hooks are the functions given by name; any hook in `HOOKS`."""

    def __init__(self, **hooks: Callable[..., Any] | None) -> None:
        unknown = sorted(set(hooks) - set(HOOKS))
        if unknown:
            raise TypeError(
                f"LambdaCallback got unknown hook(s) {unknown}; hooks are: {', '.join(HOOKS)}"
            )
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)
