"""`ProgressBar`: a live rich bar on a terminal, plain throttled lines in log files.

    from launcher.callbacks import ProgressBar

    Trainer(callbacks=[ProgressBar(refresh_rate_hz=2)])
    Trainer(callbacks=[ProgressBar(plain_every_n_steps=100)])   # SLURM logs: every 100 steps

On a TTY: `epoch 2 ━━━━━━━━━━ 120/300 35.1 it/s eta 0:00:05 train_loss=0.231`, redrawn at most
`refresh_rate_hz` times a second. Elsewhere (SLURM/Ray log files) one line every N batches
(default about 20 per epoch, at least every 50 batches), and at most `refresh_rate_hz` lines a
second, so fast epochs don't flood the log:

    epoch 2 step 120/300 (40%) 35.1 it/s eta 0:00:05 train_loss=0.231

and after every epoch one summary line with the epoch metrics. Only global rank 0 prints.
A batch that does not print costs a counter increment and, on a TTY, one `time.monotonic()`
comparison: no string formatting, no tensor access. In log files the clock is read only on the
batches that are due to print.
"""

from __future__ import annotations

import datetime
import math
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from launcher.callbacks.base import Callback
from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.module import Module
    from launcher.train.trainer import Trainer

# A plain-mode validation/test run prints progress only if it is slow (seconds between lines).
_PLAIN_EVAL_INTERVAL_S = 30.0
_NEVER = math.inf


def _total(value: Any) -> int | None:
    """A batch count as an int, or None when unknown/infinite (iterable datasets)."""
    if isinstance(value, (list, tuple)):
        value = sum(value)
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return int(value)


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def _rate(count: int, seconds: float) -> tuple[float, str]:
    rate = count / seconds if seconds > 0 else 0.0
    if 0 < rate < 1:
        return rate, f"{1 / rate:.2f} s/it"
    return rate, f"{rate:.1f} it/s"


def format_metrics(metrics: dict[str, Any]) -> str:
    """`{"train_loss": 0.2312}` -> `"train_loss=0.2312"` (4 significant digits)."""
    parts = []
    for name, value in metrics.items():
        try:
            parts.append(f"{name}={float(value):.4g}")
        except (TypeError, ValueError):
            parts.append(f"{name}={value}")
    return " ".join(parts)


def live_line(
    label: str, position: int, total: int | None, speed: list[str], metrics: str, width: int
) -> str:
    """The live bar's one line in `width` columns: what must stay, then what fits.

    `live_line("epoch 2", 120, 300, ["35.1 it/s", "eta 0:00:05"], "train_loss=0.231", 80)`
    -> `epoch 2 ━━━━━━━━━━━━━━━━───────────────────────── 120/300 35.1 it/s eta 0:00:05 train_loss=0.231`.
    The epoch, the batch count, it/s and the ETA always stay; the bar goes first and the
    metrics are cut at a whole `name=value` before that.
    """
    count = f"{position}/{total}" if total else str(position)
    must = " ".join([label, count, *speed])
    room = width - 1 - len(must)  # rich wraps a line that fills the last column
    shown: list[str] = []
    for metric in metrics.split():
        if len(metric) + 1 > room - sum(len(m) + 1 for m in shown):
            break
        shown.append(metric)
    tail = " ".join([count, *speed, *shown])
    bar_room = width - 1 - len(label) - len(tail) - 2
    if not total or bar_room < 10:
        return " ".join([label, tail])
    bar_width = min(40, bar_room)
    done = bar_width * min(position, total) / total
    full = int(done)
    bar = "━" * full + ("╸" if done - full >= 0.5 else "")
    bar = bar + "─" * (bar_width - len(bar))
    return f"{label} {bar} {tail}"


class _Phase:
    """Counters of one train epoch / validation / test run."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label
        self.total = total
        self.count = 0
        self.position = 0
        self.started = time.monotonic()
        self.task: Any = None


class ProgressBar(Callback):
    """Progress of training, validation, test and predict on global rank 0.

    `live=None` picks the rich bar when the output stream is a TTY; `stream` defaults to
    `sys.stdout` (both are mainly for tests).
    """

    def __init__(
        self,
        refresh_rate_hz: float = 4.0,
        plain_every_n_steps: int | None = None,
        *,
        every_n_batches: int | None = None,
        leave: bool = False,
        live: bool | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        if refresh_rate_hz <= 0:
            raise ValueError(f"ProgressBar(refresh_rate_hz={refresh_rate_hz}) must be > 0")
        if plain_every_n_steps is not None and plain_every_n_steps < 1:
            raise ValueError(f"ProgressBar(plain_every_n_steps={plain_every_n_steps}) must be >= 1")
        if every_n_batches is not None and every_n_batches < 0:
            raise ValueError(f"ProgressBar(every_n_batches={every_n_batches}) must be >= 0")
        self.refresh_interval_s = 1.0 / refresh_rate_hz
        # Lightning's refresh_rate: redraw every N batches (0: no bar), not by the clock.
        self.every_n_batches = every_n_batches
        self.leave = leave  # keep each finished epoch's bar on screen (live mode)
        self.plain_every_n_steps = plain_every_n_steps
        self._live_requested = live
        self._stream = stream
        self._enabled = False
        self._live = False
        self._progress: Any = None
        self._train: _Phase | None = None
        self._eval: _Phase | None = None
        # The per-batch thresholds: batch count (plain) or monotonic time (live).
        self._next_train = _NEVER
        self._next_eval = _NEVER
        self._plain_every = 50
        self._plain_quiet_until = 0.0  # plain mode: no line before this monotonic time

    # ---------------------------------------------------------------- lifecycle
    def setup(self, trainer: Trainer, module: Module, stage: str) -> None:
        self._enabled = (
            trainer.is_global_zero and trainer.enable_progress_bar and self.every_n_batches != 0
        )
        stream = self._out()
        tty = bool(getattr(stream, "isatty", lambda: False)())
        self._live = self._enabled and (
            tty if self._live_requested is None else self._live_requested
        )

    def teardown(self, trainer: Trainer, module: Module, stage: str) -> None:
        self._stop()

    def on_fit_end(self, trainer: Trainer, module: Module) -> None:
        self._stop()

    def on_exception(self, trainer: Trainer, module: Module, exception: BaseException) -> None:
        self._stop()

    def _out(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    def _start_live(self) -> Any:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import Progress, TextColumn

            console = Console(file=self._out(), force_terminal=True if self._stream else None)
            # One text column we fit to the width ourselves (`live_line`): rich's own columns
            # shrink the epoch and the counts first (`ep… 21.1 it/s`) at 80 columns.
            self._progress = Progress(
                TextColumn("{task.fields[info]}", markup=False),
                console=console,
                auto_refresh=False,
            )
            self._progress.start()
        return self._progress

    def _new_task(self, phase: _Phase) -> Any:
        """A live row for `phase`, showing `0/total` until its first batch."""
        progress = self._start_live()
        line = live_line(phase.label, 0, phase.total, [], "", progress.console.width)
        return progress.add_task(phase.label, total=phase.total, info=line)

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _print(self, line: str) -> None:
        if self._progress is not None:
            self._progress.console.print(line, highlight=False, markup=False)
        else:  # a log file: each line says when
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", file=self._out(), flush=True)

    # ---------------------------------------------------------------- training
    def on_train_start(self, trainer: Trainer, module: Module) -> None:
        loop = trainer.loop
        if loop.batch_idx > 0 and not loop.epoch_done:
            # Resumed mid-epoch: the epoch's start hook ran before the interruption (and is not
            # called again, as in Lightning), but its progress and summary line are still due.
            self.on_train_epoch_start(trainer, module)

    def on_train_epoch_start(self, trainer: Trainer, module: Module) -> None:
        if not self._enabled:
            return
        total = _total(trainer.num_training_batches)
        phase = self._train = _Phase(f"epoch {trainer.current_epoch}", total)
        if self._live:
            phase.task = self._new_task(phase)
            self._next_train = 0.0
        else:
            # About 20 lines per epoch, and at least one every 50 batches.
            default = min(50, max(1, math.ceil(total / 20))) if total else 50
            self._plain_every = self.plain_every_n_steps or default
            self._next_train = self._plain_every

    def on_train_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Hot path: keep it to one increment and one comparison on batches that don't print.
        phase = self._train
        if phase is None:
            return
        phase.count += 1
        if self.every_n_batches:
            if phase.count % self.every_n_batches and batch_idx + 1 != phase.total:
                return
        elif self._live:
            if time.monotonic() < self._next_train:
                return
            self._next_train = time.monotonic() + self.refresh_interval_s
        else:
            if phase.count < self._next_train:
                return
            self._next_train += self._plain_every
            now = time.monotonic()
            if now < self._plain_quiet_until:
                return  # due by count, but a line went out less than 1/refresh_rate_hz ago
            self._plain_quiet_until = now + self.refresh_interval_s
        phase.position = batch_idx + 1
        self._show(phase, trainer.progress_bar_metrics)

    def on_train_epoch_end(self, trainer: Trainer, module: Module) -> None:
        phase = self._train
        if phase is None:
            return
        self._train = None
        self._next_train = _NEVER
        if phase.task is not None and self._progress is not None and not self.leave:
            self._progress.remove_task(phase.task)
            self._progress.refresh()  # without auto-refresh, the removed row would linger
        elapsed = time.monotonic() - phase.started
        _, rate = _rate(phase.count, elapsed)
        metrics = format_metrics(trainer.progress_bar_metrics)
        self._print(
            f"epoch {trainer.current_epoch} done in {_duration(elapsed)}: "
            f"{phase.count} batches {rate} {metrics}".rstrip()
        )

    def _show(self, phase: _Phase, metrics: dict[str, Any], indent: str = "") -> None:
        elapsed = time.monotonic() - phase.started
        rate, rate_text = _rate(phase.count, elapsed)
        parts = [rate_text]
        if phase.total and rate > 0:
            parts.append(f"eta {_duration((phase.total - phase.position) / rate)}")
        if metrics:
            parts.append(format_metrics(metrics))
        info = " ".join(parts)
        if phase.task is not None and self._progress is not None:
            line = live_line(phase.label, phase.position, phase.total, parts[:2],
                             parts[2] if len(parts) > 2 else "", self._progress.console.width)  # fmt: skip
            self._progress.update(phase.task, completed=phase.position, info=line, refresh=True)
            return
        where = f"{indent}{phase.label} step {phase.position}"
        if phase.total:
            where += f"/{phase.total} ({100 * phase.position // phase.total}%)"
        self._print(f"{where} {info}")

    # ---------------------------------------------------------------- validation / test
    def on_validation_epoch_start(self, trainer: Trainer, module: Module) -> None:
        self._eval_start(trainer, "validate", trainer.num_val_batches)

    def on_validation_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        phase = self._eval
        if phase is None:
            return
        phase.count += 1
        if self.every_n_batches:
            if phase.count % self.every_n_batches and batch_idx + 1 != phase.total:
                return
        elif time.monotonic() < self._next_eval:
            return
        self._eval_show(phase, batch_idx)

    def on_validation_epoch_end(self, trainer: Trainer, module: Module) -> None:
        self._eval_end(trainer, summary=trainer.stage != "fit")

    def on_test_epoch_start(self, trainer: Trainer, module: Module) -> None:
        self._eval_start(trainer, "test", trainer.num_test_batches)

    def on_test_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self.on_validation_batch_end(trainer, module, outputs, batch, batch_idx)

    def on_test_epoch_end(self, trainer: Trainer, module: Module) -> None:
        self._eval_end(trainer, summary=True)

    def on_predict_epoch_start(self, trainer: Trainer, module: Module) -> None:
        self._eval_start(trainer, "predict", sum(trainer.num_predict_batches))

    def on_predict_batch_end(
        self, trainer: Trainer, module: Module, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self.on_validation_batch_end(trainer, module, outputs, batch, batch_idx)

    def on_predict_epoch_end(self, trainer: Trainer, module: Module) -> None:
        self._eval_end(trainer, summary=True, metrics=False)  # predictions log nothing

    def _eval_start(self, trainer: Trainer, label: str, total: int | float) -> None:
        if not self._enabled:
            return
        phase = self._eval = _Phase(label, _total(total))
        if self._live:
            phase.task = self._new_task(phase)
            self._next_eval = 0.0
        else:
            self._next_eval = phase.started + _PLAIN_EVAL_INTERVAL_S

    def _eval_show(self, phase: _Phase, batch_idx: int) -> None:
        interval = self.refresh_interval_s if self._live else _PLAIN_EVAL_INTERVAL_S
        self._next_eval = time.monotonic() + interval
        phase.position = batch_idx + 1
        self._show(phase, {}, indent="  ")

    def _eval_end(self, trainer: Trainer, summary: bool, metrics: bool = True) -> None:
        phase = self._eval
        if phase is None:
            return
        self._eval = None
        self._next_eval = _NEVER
        if phase.task is not None and self._progress is not None:
            # Validation inside fit is transient: its results show in the epoch summary.
            self._progress.remove_task(phase.task)
            self._progress.refresh()  # without auto-refresh, the removed row would linger
        if summary:
            elapsed = time.monotonic() - phase.started
            shown = format_metrics(trainer.progress_bar_metrics) if metrics else ""
            line = f"{phase.label} done in {_duration(elapsed)}: {phase.count} batches {shown}"
            self._print(line.rstrip())


class TQDMProgressBar(ProgressBar):
    """Lightning's `TQDMProgressBar`, drawn by `ProgressBar` (no tqdm needed).

    `refresh_rate`: redraw every N batches (0 disables the bar); `leave`: keep each finished
    epoch's bar. `process_position` (stacking bars of several trainers) is not supported.
    """

    def __init__(self, refresh_rate: int = 1, process_position: int = 0,
                 leave: bool = False) -> None:  # fmt: skip
        if process_position != 0:
            raise UserError(
                f"TQDMProgressBar(process_position={process_position}) is not supported: one "
                "trainer draws one bar here. Leave process_position at 0."
            )
        super().__init__(every_n_batches=refresh_rate, leave=leave)

    @property
    def refresh_rate(self) -> int:
        return self.every_n_batches or 0


class RichProgressBar(ProgressBar):
    """Lightning's `RichProgressBar`, drawn by `ProgressBar` (which uses rich on a TTY).

    `refresh_rate`: redraw every N batches (0 disables the bar); `leave`: keep each finished
    epoch's bar. A custom `theme` or `console_kwargs` is not supported: pass neither.
    """

    def __init__(self, refresh_rate: int = 1, leave: bool = False, theme: Any = None,
                 console_kwargs: dict[str, Any] | None = None) -> None:  # fmt: skip
        if theme is not None or console_kwargs:
            raise UserError(
                "RichProgressBar(theme=..., console_kwargs=...) is not supported: the bar has "
                "one look here. Pass only refresh_rate and leave."
            )
        super().__init__(every_n_batches=refresh_rate, leave=leave)

    @property
    def refresh_rate(self) -> int:
        return self.every_n_batches or 0
