"""Preemption and stop signals only set a flag; the trainer checks it at step boundaries and
checkpoints there. SIGTERM and SIGUSR2 (what SLURM sends before a time limit or a preemption)
mean "requeue me"; SIGINT (Ctrl-C) and SIGHUP (the terminal closed) mean "the user stopped
it": the run ends KILLED. A second Ctrl-C interrupts at once.

    signals = PreemptionSignals()
    signals.install()          # in fit(); a no-op outside the main thread
    if signals.received: ...   # at a step boundary
    signals.stopping           # True: stop (SIGINT/SIGHUP, or SIGTERM with sigterm_stops)
    signals.restore()

No I/O ever happens inside the handler (a checkpoint written there can be cut off halfway).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)
STOP_SIGNALS = (signal.SIGINT, signal.SIGHUP)


class PreemptionSignals:
    """Records the last preemption signal received; restores the previous handlers after."""

    def __init__(self) -> None:
        self.received: int | None = None
        # A local run in this process: SIGTERM is someone's `kill`, not a scheduler's notice.
        self.sigterm_stops = False
        # Asked at a preemption: why no requeue is left ("max_requeues=3 used"), or None. A
        # reason ends the run FAILED instead of "waiting for requeue".
        self.no_requeue: Callable[[], str | None] | None = None
        self._previous: dict[int, Any] = {}

    @property
    def stopping(self) -> bool:
        """The signal received asks to stop the run for good, not to requeue it."""
        if self.received in STOP_SIGNALS:
            return True
        return self.received == signal.SIGTERM and self.sigterm_stops

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else "a peer's signal"

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python only delivers signals to the main thread
        for sig in (*PREEMPT_SIGNALS, *STOP_SIGNALS):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: now, without waiting for a step boundary
        self.received = signum
