"""`launch compare SWEEP --plot FILE.png`: a parallel-coordinates plot and the objective curves.

    plot_sweep(record, trial_results(record), "sweep.png")   # -> ["sweep.png", "sweep-curves.png"]

One vertical axis per swept key (numbers on their own scale, other values spread evenly) and
one for the objective; one line per trial, coloured by its objective.
"""

from __future__ import annotations

from pathlib import Path

from launcher.sweep.record import SweepRecord
from launcher.sweep.tracking import TrialResult


def plot_sweep(record: SweepRecord, results: list[TrialResult], path: str) -> list[str]:
    """Write the parallel-coordinates PNG at `path` and the curves beside it; return both."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from launcher.errors import UserError
    from launcher.tracking.reader import plot_curves

    scored = [r for r in results if r.objective is not None]
    if not record.metric or not scored:
        raise UserError(
            f"sweep {record.name} has no objective values to plot yet (its --metric "
            f"{record.metric or '(none)'}); plot once trials have logged it"
        )
    keys = list(dict.fromkeys(k for t in record.trials for k in t.params))
    axes = [*keys, record.metric]
    columns = [[record.trials[r.index].params.get(k, "") for r in scored] for k in keys]
    columns.append([f"{r.objective:.4g}" for r in scored])
    scaled, ticks = zip(*(_scale(values) for values in columns), strict=True)
    objectives = [r.objective or 0.0 for r in scored]
    low, high = min(objectives), max(objectives)
    cmap = colormaps["viridis"]
    fig = Figure(figsize=(max(4, 2 * len(axes)), 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for row, result in enumerate(scored):
        shade = 0.5 if high == low else ((result.objective or 0.0) - low) / (high - low)
        ax.plot(range(len(axes)), [col[row] for col in scaled], color=cmap(shade),
                label=f"trial {result.index}", marker="o")  # fmt: skip
    for x, labels in enumerate(ticks):
        ax.axvline(x, color="0.6", linewidth=0.8)
        for y, text in labels:
            ax.annotate(text, (x, y), fontsize="x-small", xytext=(3, 0), textcoords="offset points")
    ax.set_xticks(range(len(axes)), axes)
    ax.set_yticks([])
    ax.set_title(f"{record.name}: {record.metric} ({record.mode})")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    curves = str(Path(path).with_name(f"{Path(path).stem}-curves.png"))
    plot_curves(record.tracking_uri or "", [r.run_id for r in scored if r.run_id],
                [record.metric], curves)  # fmt: skip
    return [path, curves]


def _scale(values: list[str]) -> tuple[list[float], list[tuple[float, str]]]:
    """Values onto [0, 1]: numbers by value, anything else evenly in first-seen order."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        order = list(dict.fromkeys(values))
        step = 1.0 / max(len(order) - 1, 1)
        return [order.index(v) * step for v in values], [(i * step, v) for i, v in enumerate(order)]
    low, high = min(numbers), max(numbers)
    span = high - low or 1.0
    scaled = [(n - low) / span for n in numbers]
    return scaled, [(s, v) for s, v in {s: v for s, v in zip(scaled, values, strict=True)}.items()]
