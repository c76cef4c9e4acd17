"""Preemption signals: SIGTERM and SIGUSR2 (what SLURM sends before a time limit or a
preemption) only set a flag; the trainer checks it at step boundaries and checkpoints there.

    signals = PreemptionSignals()
    signals.install()          # in fit(); a no-op outside the main thread
    if signals.received: ...   # at a step boundary
    signals.restore()

No I/O ever happens inside the handler (a checkpoint written there can be cut off halfway).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


class PreemptionSignals:
    """Records the last preemption signal received; restores the previous handlers after."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else "a peer's signal"

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python only delivers signals to the main thread
        for sig in PREEMPT_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        self.received = signum
