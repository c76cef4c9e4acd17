"""Errors meant for people.

A `UserError` is a mistake the user can fix (bad path, bad flag, bad YAML...). The CLI prints
its message as one paragraph and exits with code 2; a traceback only appears under `--debug`.
Anything else is a bug in our code and may crash loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

USER_ERROR_EXIT_CODE = 2
# A run that failed: a bug, or the machine (out of disk space: `OutOfSpace`).
FAILURE_EXIT_CODE = 1
# A worker that checkpointed on SIGTERM/SIGUSR2 exits with this code: "requeue me".
REQUEUE_EXIT_CODE = 3
# A run stopped on purpose (Ctrl-C, a closed terminal, `kill`): the shell's codes for SIGINT
# and SIGTERM (a closed terminal's SIGHUP counts as SIGTERM).
INTERRUPTED_EXIT_CODE = 130
TERMINATED_EXIT_CODE = 143
# How long a collective waits for a hung peer before the process group fails (torch's own
# default is 30 minutes); the Ray backend's TorchConfig uses it too.
PROCESS_GROUP_TIMEOUT_S = 120


class UserError(Exception):
    """A mistake in the user's input, with a message that names the fix."""


class RunStopped(KeyboardInterrupt):
    """Raised inside the trainer after it checkpointed on SIGINT/SIGHUP: the user stopped it.

    A `KeyboardInterrupt`, as Lightning's callbacks expect to see in `on_exception`.
    """

    def __init__(self, signal_name: str, checkpoint: str | None = None) -> None:
        super().__init__(f"stopped on {signal_name}; checkpoint {checkpoint}")
        self.signal_name = signal_name
        self.checkpoint = checkpoint

    @property
    def exit_code(self) -> int:
        return INTERRUPTED_EXIT_CODE if self.signal_name == "SIGINT" else TERMINATED_EXIT_CODE


class RequeueRequested(Exception):
    """Raised inside the trainer after it checkpointed on a preemption signal."""

    def __init__(self, signal_name: str, checkpoint: str | None = None) -> None:
        super().__init__(f"stopped on {signal_name}; checkpoint {checkpoint}")
        self.signal_name = signal_name
        self.checkpoint = checkpoint


class OutOfSpace(Exception):
    """A file could not be written for lack of disk space (or quota); nothing partial is left.

    Its message is the one paragraph shown to people: the path, how much it needed, what is
    free there, and what was kept (`kept`, set by whoever knows: the last good checkpoint).
    """

    def __init__(self, path: str, needed: int, free: int | None, kept: str | None = None) -> None:
        super().__init__(path)
        self.path, self.needed, self.free, self.kept = path, needed, free, kept

    def keep_too(self, what: str) -> None:
        """Add `what` to what the message says was kept (once)."""
        if not self.kept:
            self.kept = what
        elif what not in self.kept:
            self.kept = f"{self.kept}; {what}"

    def __str__(self) -> str:
        free = f", {_mb(self.free)} free there" if self.free is not None else ""
        kept = f" Kept: {self.kept}." if self.kept else ""
        return (
            f"out of disk space writing {self.path}: it needs about {_mb(self.needed)}{free}; "
            f"the partial file was removed.{kept} Free some space (or move --output-dir to a "
            "bigger disk), then continue with `launch resume NAME`."
        )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


class NotSupportedError(UserError, ImportError):
    """A Lightning name we do not have: `from launcher.callbacks import ModelPruning`.

    An ImportError (not an AttributeError) so that `from ... import` keeps our message, which
    says why and what to use instead.
    """


def not_supported(module: str, name: str, why: str) -> NotSupportedError:
    """The error for Lightning's `name` missing from `module`, naming the alternative."""
    return NotSupportedError(f"{module}.{name} (Lightning's {name}) is not supported: {why}")


def module_getattr(module: str, unsupported: dict[str, str]) -> Callable[[str], Any]:
    """A module's `__getattr__` (PEP 562): Lightning names in `unsupported` raise
    `not_supported` with their alternative, anything else the usual AttributeError.

    __getattr__ = module_getattr("launcher.callbacks", NOT_SUPPORTED)
    """

    def __getattr__(name: str) -> Any:
        if name in unsupported:
            raise not_supported(module, name, unsupported[name])
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
