"""`SweepPlan`: a sweep decided before anything runs; `render()` is the `--dry-run` text.

    plan = SweepPlan(record, specs, jobs)   # built by `launch sweep` (launcher/cli/sweep.py)
    print(plan.render())                    # the trial table, then each trial's job, exactly
    trial_command(argv, trial)              # `launch RECIPE ... --set lr=0.01 --seed 1`

The trial table and the job texts are all a dry run shows, and all a submission performs.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from launcher.spec import LaunchSpec
from launcher.sweep.record import SweepRecord, TrialRecord

# `launch sweep` flags that say the search, not the run: a trial's own command drops them.
SEARCH_FLAGS = ("--grid", "--random", "--uniform", "--loguniform", "--choice", "--seeds",
                "--sweep", "--max-parallel", "--max-trials", "--metric", "--mode", "--seed",
                "--name")  # fmt: skip
SEARCH_SWITCHES = ("--dry-run", "--wait")


@dataclass
class SweepPlan:
    """The sweep's record (trials, objective), each trial's spec, and the job each becomes."""

    record: SweepRecord
    specs: list[LaunchSpec]
    jobs: list[str]  # per trial: the text its backend's plan renders (what it starts)

    def render(self) -> str:
        record = self.record
        objective = f"{record.metric} ({record.mode})" if record.metric else "none (no --metric)"
        lines = [
            f"sweep {record.name}: {len(record.trials)} trials of {record.recipe}",
            f"  backend {record.backend}, at most {record.max_parallel} at once; "
            f"objective {objective}",
            f"  sweep dir {record.sweep_dir}",
            "",
            *trial_table(record.trials),
            "",
        ]
        for trial, job in zip(record.trials, self.jobs, strict=True):
            lines.append(f"trial {trial.index}: {trial.command}")
            lines.extend(f"    {line}" for line in job.rstrip("\n").splitlines())
        return "\n".join(lines) + "\n"


def trial_table(trials: list[TrialRecord], extra: dict[str, list[str]] | None = None) -> list[str]:
    """Lines of a table: trial number, each swept key, seed, run name (and `extra` columns)."""
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    columns: dict[str, list[str]] = {"trial": [str(t.index) for t in trials]}
    for key in keys:
        columns[key] = [t.params.get(key, "-") for t in trials]
    if any(t.seed is not None for t in trials):
        columns["seed"] = ["-" if t.seed is None else str(t.seed) for t in trials]
    columns.update(extra or {})
    columns["run"] = [t.name for t in trials]
    widths = {name: max(len(name), *(len(v) for v in values)) for name, values in columns.items()}
    header = "  ".join(name.ljust(widths[name]) for name in columns).rstrip()
    rows = ["  ".join(values[i].ljust(widths[name]) for name, values in columns.items()).rstrip()
            for i in range(len(trials))]  # fmt: skip
    return [header, *rows]


def trial_command(argv: list[str], params: dict[str, str], seed: int | None) -> str:
    """The `launch` command that runs one trial alone: the sweep's own flags minus the
    search, plus `--set KEY=VALUE` for its point and `--seed` for its seed.

    `trial_command(["sweep", "r.py", "--grid", "lr=1,2", "--max-steps", "9"], {"lr": "1"}, None)`
    -> `"launch r.py --max-steps 9 --set lr=1"`.
    """
    words = list(argv)
    if words and words[0] == "sweep":
        words = words[1:]
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        flag = word.split("=", 1)[0]
        if flag in SEARCH_FLAGS:
            skip = "=" not in word  # `--grid lr=1,2` takes the next word; `--seeds=2` does not
            continue
        if word in SEARCH_SWITCHES:
            continue
        kept.append(word)
    for key, value in params.items():
        kept += ["--set", f"{key}={value}"]
    if seed is not None:
        kept += ["--seed", str(seed)]
    return shlex.join(["launch", *kept])
