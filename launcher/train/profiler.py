"""`Trainer(profiler="simple")`: time the loop's main actions, report them when a stage ends.

    profiler = build_profiler("simple")          # None -> PassThroughProfiler (does nothing)
    with profiler.profile("run_training_batch"):
        ...
    print(profiler.summary())                    # Lightning's SimpleProfiler table

Like Lightning's `SimpleProfiler`: per action the mean duration, the number of calls, the
total time and its share of the stage's time. The report is printed on global rank 0 when
`fit`/`validate`/`test` ends and written to `RUN_DIR/<stage>-profiler.txt`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from launcher.errors import UserError

_F = TypeVar("_F", bound=Callable[..., Any])

PROFILERS = ("simple",)


class PassThroughProfiler:
    """Profiles nothing (`profiler=None`)."""

    def start(self) -> None: ...

    @contextmanager
    def profile(self, action: str) -> Iterator[None]:
        yield

    def wrap(self, action: str, fn: _F) -> _F:
        """`fn`, timed as `action` when profiling; `fn` itself otherwise (costs nothing)."""
        return fn

    def report(self, stage: str, run_dir: str | None, is_global_zero: bool) -> None: ...


class SimpleProfiler(PassThroughProfiler):
    """Wall-clock durations of named actions, summed per action."""

    def __init__(self) -> None:
        self.recorded: dict[str, list[float]] = defaultdict(list)
        self._started = time.monotonic()

    def start(self) -> None:
        """Forget what was recorded: a new stage begins."""
        self.recorded.clear()
        self._started = time.monotonic()

    @contextmanager
    def profile(self, action: str) -> Iterator[None]:
        begin = time.monotonic()
        try:
            yield
        finally:
            self.recorded[action].append(time.monotonic() - begin)

    def wrap(self, action: str, fn: _F) -> _F:
        recorded = self.recorded[action]

        def timed(*args: Any, **kwargs: Any) -> Any:
            begin = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                recorded.append(time.monotonic() - begin)

        return timed  # type: ignore[return-value]

    def summary(self) -> str:
        total = max(time.monotonic() - self._started, 1e-9)
        rows = sorted(
            ((a, sum(d) / len(d), len(d), sum(d)) for a, d in self.recorded.items() if d),
            key=lambda row: row[3],
            reverse=True,
        )
        header = ("Action", "Mean duration (s)", "Num calls", "Total time (s)", "Percentage %")
        lines = [(a, f"{mean:.5g}", str(n), f"{tot:.5g}", f"{100 * tot / total:.3g}")
                 for a, mean, n, tot in rows]  # fmt: skip
        lines.insert(0, ("Total", "-", str(sum(len(d) for d in self.recorded.values())),
                         f"{total:.5g}", "100 %"))  # fmt: skip
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
        fmt = "|  " + "  |  ".join(f"{{:<{w}}}" for w in widths) + "  |"
        rule = "-" * len(fmt.format(*header))
        body = [fmt.format(*header), rule, *(fmt.format(*r) for r in lines)]
        return "\n".join(["Profiler Report", rule, *body, rule])

    def report(self, stage: str, run_dir: str | None, is_global_zero: bool) -> None:
        """Print the summary (rank 0) and write it next to the run's other files."""
        if not is_global_zero:
            return
        text = f"{stage.upper()} " + self.summary()
        print(text, flush=True)
        if run_dir:
            path = Path(run_dir) / f"{stage}-profiler.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")


def build_profiler(profiler: str | PassThroughProfiler | None) -> PassThroughProfiler:
    """`Trainer(profiler=...)`: None, "simple" or a profiler object."""
    if profiler is None:
        return PassThroughProfiler()
    if isinstance(profiler, PassThroughProfiler):
        return profiler
    if profiler == "simple":
        return SimpleProfiler()
    raise UserError(
        f"profiler={profiler!r} is not supported; use profiler='simple' (Lightning's "
        "SimpleProfiler: times the loop's main actions) or profiler=None"
    )
