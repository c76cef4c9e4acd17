"""What a person sees in a real terminal: `launch` run inside tmux at 80 and 120 columns.

The screen is read with `tmux capture-pane` while the run trains and after it ends, so these
tests see what rich drew and what the summary printed, as a terminal shows them.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.resume_harness import TINY

# epoch, batch count, it/s and ETA: what must stay on the live line at any width.
LIVE = re.compile(r"epoch 1 .*\b\d+/48 [\d.]+ (it/s|s/it) eta \d+:\d\d:\d\d")


def _screen(tmux: str, sock: Path) -> str:
    done = subprocess.run([tmux, "-S", str(sock), "capture-pane", "-p", "-J", "-S", "-200"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 120])
def test_a_local_run_in_a_terminal_shows_the_bar_and_ends_with_a_summary(tmp_path, tmux, columns):
    sock = tmp_path / "tmux.sock"
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LAUNCHER_VERBOSE")
    }
    launch = [sys.executable, "-m", "launcher.cli.app", TINY, "--name", "screen", "--max-epochs",
              "2", "--output-dir", str(tmp_path / "out"), "--set", "step_sleep=0.15",
              "--set", "trainer.enable_progress_bar=true", "--set", "n_train=384"]  # fmt: skip
    command = f"{shlex.join(launch)}; echo EXIT=$?; sleep 600"
    subprocess.run(
        [tmux, "-S", str(sock), "new-session", "-d", "-x", str(columns), "-y", "50", command],
        env={**env, "TERM": "xterm-256color"}, cwd=tmp_path, check=True, timeout=30,
    )  # fmt: skip
    live: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            screen = _screen(tmux, sock)
            live += [line for line in screen.splitlines() if LIVE.search(line)]
            if "EXIT=" in screen:
                break
            time.sleep(0.3)
        screen = _screen(tmux, sock)
    finally:
        subprocess.run([tmux, "-S", str(sock), "kill-server"], timeout=30)
    assert "EXIT=0" in screen, screen
    assert live, f"no live line with epoch, count, it/s and eta at {columns} columns:\n{screen}"
    assert all(len(line.rstrip()) < columns for line in live), live
    if columns >= 120:  # room for the bar and a metric too
        assert any("─" in line and "train_loss=" in line for line in live), live
    summary = screen[screen.index("run screen FINISHED in") :]
    assert re.search(r"run screen FINISHED in [\d.]+s: 96 steps, 2 epochs", summary), summary
    assert "val_acc " in summary and "run dir: " in summary, summary
    assert re.search(r"MLflow run [0-9a-f]{32}: launch ui --output-dir ", summary), summary
    assert "launch compare screen OTHER_RUN" in summary
    assert "Creating initial MLflow" not in screen and "INFO mlflow" not in screen, screen
