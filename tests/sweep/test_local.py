"""Local trials: at most `max_parallel` at once, each one's end reported, failures counted."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from launcher.sweep import local
from launcher.sweep.record import SweepRecord, TrialRecord


def test_trials_run_at_most_max_parallel_at_once_and_each_end_is_reported(tmp_path, monkeypatch):
    # Each "trial" appends its start and end time; trial 2 fails.
    script = ("import os, sys, time; f = open(sys.argv[1], 'a'); f.write(f's {time.time()}\\n'); "
              "open(sys.argv[1] + '.omp', 'w').write(os.environ['OMP_NUM_THREADS']); "
              "f.flush(); time.sleep(0.6); f.write(f'e {time.time()}\\n'); sys.exit(int(sys.argv[2]))")  # fmt: skip
    trials = [TrialRecord(i, f"t-{i}", str(tmp_path / f"t-{i}"), {"lr": str(i)}) for i in range(4)]
    monkeypatch.setattr(local, "trial_process_command", lambda t: [
        sys.executable, "-c", script, str(tmp_path / "times.txt"), "1" if t.index == 2 else "0"])  # fmt: skip
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    record = SweepRecord("s", str(tmp_path), "r.py", "e", "local", {}, trials, max_parallel=2)
    ended: list[tuple[int, int]] = []
    code = local.run_trials(record, trials, lambda t, c: ended.append((t.index, c)), poll_s=0.05)
    assert code == 1  # one trial failed: the sweep did not succeed
    assert sorted(ended) == [(0, 0), (1, 0), (2, 1), (3, 0)]
    events = sorted((float(t), kind) for kind, t in
                    (line.split() for line in Path(tmp_path / "times.txt").read_text().splitlines()))  # fmt: skip
    running = peak = 0
    for _, kind in events:
        running += 1 if kind == "s" else -1
        peak = max(peak, running)
    assert peak == 2
    assert all((tmp_path / f"t-{i}" / local.TRIAL_LOG).is_file() for i in range(4))  # P > 1
    # The P trials share the host's cores.
    assert (tmp_path / "times.txt.omp").read_text() == str(max(1, (os.cpu_count() or 1) // 2))
