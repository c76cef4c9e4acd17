"""Where `self.log` may be called and its `on_step`/`on_epoch` defaults there (Lightning's
`_FxValidator`).

    on_step, on_epoch = log_levels("on_train_epoch_end", None, None)   # (False, True)

`hook` is the hook running when `self.log` is called (`Trainer.current_hook`); None means a
step method (`training_step`: per step; `validation_step`/`test_step`: per epoch), which the
stage's `Results` defaults decide.
"""

from __future__ import annotations

from launcher.errors import UserError

# Hooks that may log only epoch values (on_step=False, on_epoch=True).
EPOCH_ONLY = frozenset({
    "on_train_start", "on_validation_start", "on_test_start",
    "on_train_epoch_start", "on_train_epoch_end", "on_validation_epoch_start",
    "on_validation_epoch_end", "on_test_epoch_start", "on_test_epoch_end",
})  # fmt: skip
# Per-step hooks of training (default per step) and of evaluation (default per epoch).
TRAIN_STEP = frozenset({
    "on_before_backward", "on_after_backward", "on_before_optimizer_step", "on_before_zero_grad",
    "on_train_batch_start", "on_train_batch_end",
})  # fmt: skip
EVAL_STEP = frozenset({
    "on_validation_batch_start", "on_validation_batch_end", "on_test_batch_start",
    "on_test_batch_end",
})  # fmt: skip
# Hooks whose values are the epoch's own: computed at once, since the epoch is over.
EPOCH_END = frozenset({"on_train_epoch_end", "on_validation_epoch_end", "on_test_epoch_end"})


def log_levels(
    hook: str | None, name: str, on_step: bool | None, on_epoch: bool | None
) -> tuple[bool | None, bool | None]:
    """`(on_step, on_epoch)` for `self.log(name, ...)` inside `hook`; raises where Lightning does."""
    if hook is None:
        return on_step, on_epoch
    if hook in TRAIN_STEP or hook in EVAL_STEP:
        step_default = hook in TRAIN_STEP
        on_step = step_default if on_step is None else on_step
        on_epoch = (not step_default) if on_epoch is None else on_epoch
        return on_step, on_epoch
    if hook not in EPOCH_ONLY:
        raise UserError(
            f"You can't `self.log({name!r}, ...)` inside `{hook}` (Lightning does not allow it "
            "either). Log it in a step method or an epoch hook, or log straight to the logger "
            "with `self.logger.log_metrics(...)`."
        )
    if on_step:
        raise UserError(
            f"You can't `self.log({name!r}, ..., on_step=True)` inside `{hook}`: it runs once "
            "per epoch. Drop on_step (its values are epoch values: on_step=False, on_epoch=True)."
        )
    if on_epoch is False:
        raise UserError(
            f"You can't `self.log({name!r}, ..., on_epoch=False)` inside `{hook}`: it runs once "
            "per epoch, so what it logs is an epoch value. Drop on_epoch=False."
        )
    return False, True
