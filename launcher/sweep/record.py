"""What a sweep keeps about itself: `SWEEP_DIR/sweep.json`, and an index entry per sweep.

    record = SweepRecord.read(sweep_dir)          # name, trials, metric, parent MLflow run ...
    record.trials[3].run_dir                      # each trial is a run of its own, in the sweep dir
    SweepIndex(registry.root).find("digits-sweep")  # by name or unique prefix, else None

The index (`$LAUNCHER_HOME/sweeps/NAME.json`, next to the job registry) only points at the
sweep dir, so `launch status SWEEP` finds a sweep by name wherever its output went.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from launcher.common.files import atomic_write_text

SWEEP_FILENAME = "sweep.json"


@dataclass
class TrialRecord:
    """One trial: its number, run name and dir, the `--set` values it adds, its seed."""

    index: int
    name: str
    run_dir: str
    params: dict[str, str]
    seed: int | None = None
    command: str = ""  # the `launch` command that runs this trial alone


@dataclass
class SweepRecord:
    """A sweep: its definition, its trials, its objective and its MLflow parent run."""

    name: str
    sweep_dir: str
    recipe: str
    experiment: str
    backend: str
    definition: dict[str, Any]
    trials: list[TrialRecord]
    metric: str | None = None
    mode: str = "max"
    max_parallel: int = 1
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    pid: int | None = None  # the `launch sweep` process running the trials (local)
    state: str = "PENDING"  # a JobState word for the sweep as a whole
    submitted_at: float = field(default_factory=time.time)
    command: str = ""

    @property
    def path(self) -> Path:
        return Path(self.sweep_dir) / SWEEP_FILENAME

    def write(self) -> None:
        atomic_write_text(self.path, json.dumps(asdict(self), indent=2))  # keeps the keys' order

    @classmethod
    def read(cls, sweep_dir: str | os.PathLike[str]) -> SweepRecord:
        data = json.loads((Path(sweep_dir) / SWEEP_FILENAME).read_text())
        data["trials"] = [TrialRecord(**t) for t in data["trials"]]
        return cls(**data)

    def trial(self, index: int) -> TrialRecord:
        from launcher.errors import UserError

        if not 0 <= index < len(self.trials):
            raise UserError(
                f"--trial {index}: sweep {self.name} has trials 0-{len(self.trials) - 1}"
            )
        return self.trials[index]


class SweepIndex:
    """Sweeps by name, one small file each under `ROOT/sweeps/` (ROOT: the job registry's)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.dir = Path(root) / "sweeps"  # beside the job registry's `jobs/`

    def add(self, record: SweepRecord) -> None:
        entry = {"name": record.name, "sweep_dir": record.sweep_dir}
        atomic_write_text(self.dir / f"{record.name}.json", json.dumps(entry))

    def records(self) -> list[SweepRecord]:
        """Every sweep whose dir still holds its record, newest first."""
        found = []
        for path in self.dir.glob("*.json") if self.dir.is_dir() else ():
            try:
                found.append(SweepRecord.read(json.loads(path.read_text())["sweep_dir"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(found, key=lambda r: r.submitted_at, reverse=True)

    def find(self, ref: str) -> SweepRecord | None:
        """The sweep `ref` names (its name, a unique prefix, or its dir); None if none does."""
        if (Path(ref) / SWEEP_FILENAME).is_file():
            return SweepRecord.read(ref)
        records = self.records()
        exact = [r for r in records if r.name == ref]
        prefixed = exact or [r for r in records if r.name.startswith(ref)]
        return prefixed[0] if len(prefixed) == 1 else None
