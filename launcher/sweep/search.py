"""The search: a sweep's definition (grids, random ranges, seeds) and the trials it makes.

    space = SearchSpace(grid={"lr": ["0.1", "0.01"]}, seeds=2, seed=0)
    [t.params for t in make_trials(space)]   # [{"lr": "0.1"}, {"lr": "0.1"}, {"lr": "0.01"}, ...]

    space = SearchSpace(random=4, ranges={"lr": Range("loguniform", 1e-4, 1e-2)}, seed=7)
    make_trials(space) == make_trials(space)   # a fixed seed draws the same trials

Pure: no files, no clock, no global random state. Values are strings, exactly what `--set
KEY=VALUE` takes, so the CLI checks them with the same rules (`resolve_overrides`).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

from launcher.errors import UserError

DEFAULT_MAX_TRIALS = 256
RANGE_KINDS = ("uniform", "loguniform", "choice")
# The keys a `--sweep sweep.yaml` file may hold; each is the flag of the same name.
YAML_KEYS = ("grid", "random", *RANGE_KINDS, "seed", "seeds", "max_parallel", "max_trials",
             "metric", "mode")  # fmt: skip


@dataclass(frozen=True)
class Range:
    """Where a random search draws one key from: `uniform`/`loguniform` over [low, high], or
    one of `choices`."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()

    def draw(self, rng: random.Random) -> str:
        if self.kind == "choice":
            return rng.choice(self.choices)
        if self.kind == "loguniform":
            return f"{math.exp(rng.uniform(math.log(self.low), math.log(self.high))):.6g}"
        return f"{rng.uniform(self.low, self.high):.6g}"


@dataclass
class SearchSpace:
    """A sweep's search: the product of `grid`, times `random` draws from `ranges`, each point
    repeated with `seeds` seeds (`seed`, `seed + 1`, ...; `seed` also seeds the draws)."""

    grid: dict[str, list[str]] = field(default_factory=dict)
    random: int = 0
    ranges: dict[str, Range] = field(default_factory=dict)
    seed: int | None = None
    seeds: int = 1

    def keys(self) -> list[str]:
        return [*self.grid, *self.ranges]

    def to_dict(self) -> dict[str, Any]:
        """The definition as the YAML file would say it (the MLflow parent run's artifact)."""
        out: dict[str, Any] = {}
        if self.grid:
            out["grid"] = {k: list(v) for k, v in self.grid.items()}
        if self.random:
            out["random"] = self.random
        for kind in RANGE_KINDS:
            chosen = {k: r for k, r in self.ranges.items() if r.kind == kind}
            if chosen:
                out[kind] = {k: list(r.choices) if kind == "choice" else [r.low, r.high]
                             for k, r in chosen.items()}  # fmt: skip
        if self.seed is not None:
            out["seed"] = self.seed
        if self.seeds != 1:
            out["seeds"] = self.seeds
        return out


@dataclass(frozen=True)
class Trial:
    """One point of the search: its number, the `--set` values it adds, its seed."""

    index: int
    params: dict[str, str]
    seed: int | None


def make_trials(space: SearchSpace, max_trials: int = DEFAULT_MAX_TRIALS) -> list[Trial]:
    """Every trial of `space`, numbered from 0; `UserError` when it is empty or too large."""
    if space.ranges and not space.random:
        raise UserError("--uniform/--loguniform/--choice draw values: add --random N (how many)")
    if not space.grid and not space.random:
        raise UserError(
            "empty search: give --grid KEY=V1,V2 (repeatable), or --random N with "
            "--uniform/--loguniform/--choice KEY=..., or --sweep sweep.yaml"
        )
    if space.random and not space.ranges:
        raise UserError("--random N draws from ranges: add --uniform/--loguniform/--choice KEY=...")
    if space.random < 0 or space.seeds < 1:
        raise UserError("--random and --seeds must be positive numbers")
    count = math.prod(len(v) for v in space.grid.values()) * max(space.random, 1) * space.seeds
    if count > max_trials:
        raise UserError(
            f"the search makes {count} trials, more than --max-trials {max_trials}; "
            "narrow it, or raise --max-trials"
        )
    points = [dict(zip(space.grid, values, strict=True))
              for values in itertools.product(*space.grid.values())]  # fmt: skip
    if space.random:
        rng = random.Random(space.seed if space.seed is not None else 0)
        draws = [{k: r.draw(rng) for k, r in space.ranges.items()} for _ in range(space.random)]
        points = [{**point, **draw} for point in points for draw in draws]
    base = space.seed if space.seed is not None else 0
    seeds: list[int | None] = [space.seed] if space.seeds == 1 else [base + k for k in range(space.seeds)]  # fmt: skip
    combos = [(point, seed) for point in points for seed in seeds]
    return [Trial(i, point, seed) for i, (point, seed) in enumerate(combos)]


# -- parsing the flags and the YAML file ---------------------------------------------------


def parse_grid(pairs: list[str]) -> dict[str, list[str]]:
    """`["lr=0.1,0.01", "hidden=16,32"]` -> `{"lr": ["0.1", "0.01"], "hidden": ["16", "32"]}`."""
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        key, values = _split(pair, "--grid", "--grid lr=0.1,0.01")
        if key in grid:
            raise UserError(f"--grid {key} is given twice; list all its values in one --grid")
        grid[key] = values.split(",")
    return grid


def parse_range(kind: str, pair: str) -> tuple[str, Range]:
    """`parse_range("loguniform", "lr=1e-4:1e-2")` -> `("lr", Range("loguniform", 1e-4, 0.01))`."""
    flag = f"--{kind}"
    if kind == "choice":
        key, values = _split(pair, flag, "--choice hidden=16,32")
        return key, Range("choice", choices=tuple(values.split(",")))
    key, bounds = _split(pair, flag, f"{flag} lr=1e-4:1e-2")
    low_text, sep, high_text = bounds.partition(":")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        low = high = math.nan
    if not sep or not low < high or (kind == "loguniform" and low <= 0):
        need = "0 < LOW < HIGH" if kind == "loguniform" else "LOW < HIGH"
        raise UserError(
            f"{flag} {pair}: expected KEY=LOW:HIGH with {need}, e.g. {flag} lr=1e-4:1e-2"
        )
    return key, Range(kind, low, high)


def _split(pair: str, flag: str, example: str) -> tuple[str, str]:
    key, sep, values = pair.partition("=")
    if not sep or not key.strip() or not values or "" in values.split(","):
        raise UserError(f"{flag} {pair}: expected KEY=VALUES, e.g. {example}")
    return key.strip(), values


def space_from_yaml(data: Any, source: str) -> tuple[SearchSpace, dict[str, Any]]:
    """A `sweep.yaml`'s search, and its other settings (metric, mode, max_parallel, ...).

    grid: {lr: [0.1, 0.01]}         # or "0.1,0.01"
    random: 4
    loguniform: {lr: [1e-4, 1e-2]}  # or "1e-4:1e-2"; also uniform, choice: {hidden: [16, 32]}
    seed: 0
    seeds: 2
    metric: val_acc
    mode: max
    """
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of {', '.join(YAML_KEYS)}")
    unknown = sorted(set(data) - set(YAML_KEYS))
    if unknown:
        raise UserError(f"{source}: unknown keys {unknown}; valid keys: {', '.join(YAML_KEYS)}")
    space = SearchSpace()
    grid = data.get("grid") or {}
    space.grid = parse_grid([f"{k}={_joined(v, ',')}" for k, v in _mapping(grid, "grid", source)])
    for kind in RANGE_KINDS:
        join = "," if kind == "choice" else ":"
        for key, value in _mapping(data.get(kind) or {}, kind, source):
            name, found = parse_range(kind, f"{key}={_joined(value, join)}")
            _add_range(space, name, found)
    space.random = _int(data, "random", 0, source)
    space.seeds = _int(data, "seeds", 1, source)
    if data.get("seed") is not None:
        space.seed = _int(data, "seed", 0, source)
    settings = {k: data[k] for k in ("metric", "mode", "max_parallel", "max_trials") if k in data}
    return space, settings


def add_ranges(space: SearchSpace, kind: str, pairs: list[str]) -> None:
    """Add `--uniform`/`--loguniform`/`--choice` flags to `space` (a key only once)."""
    for pair in pairs:
        key, found = parse_range(kind, pair)
        _add_range(space, key, found)


def _add_range(space: SearchSpace, key: str, found: Range) -> None:
    if key in space.ranges or key in space.grid:
        raise UserError(f"{key} is searched twice (a grid and a range, or two ranges); keep one")
    space.ranges[key] = found


def _mapping(value: Any, key: str, source: str) -> list[tuple[str, Any]]:
    if not isinstance(value, dict):
        raise UserError(f"{source}: {key} must map keys to values, e.g. {key}: {{lr: [...]}}")
    return [(str(k), v) for k, v in value.items()]


def _joined(value: Any, sep: str) -> str:
    return sep.join(str(v) for v in value) if isinstance(value, list) else str(value)


def _int(data: dict[str, Any], key: str, default: int, source: str) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise UserError(f"{source}: {key} must be a whole number, got {value!r}")
    return value
