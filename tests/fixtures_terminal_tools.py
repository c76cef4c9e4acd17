"""Programs the tests drive from outside, as a person would: a browser and a terminal.

    dom = chromium(url)          # the page's DOM once its JavaScript has rendered
    tmux_path = tmux             # a tmux binary, to run a command in a sized terminal

scripts/debian_tool.sh installs Debian's chromium / tmux the first time. Where they cannot be
installed the tests fail loudly instead of skipping.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "debian_tool.sh"


def installed(tool: str) -> str:
    """The path of `tool`, installed by scripts/debian_tool.sh when missing."""
    done = subprocess.run(["bash", str(SCRIPT), tool], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"could not set up {tool} for the tests:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def tmux() -> str:
    return installed("tmux")


@pytest.fixture(scope="session")
def chromium() -> Callable[[str], str]:
    binary = installed("chromium")

    def dump_dom(url: str, budget_ms: int = 20000) -> str:
        with tempfile.TemporaryDirectory() as profile:  # no state shared between pages
            page = subprocess.run(
                [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                 "--dump-dom", url],
                capture_output=True, text=True, timeout=180,
            )  # fmt: skip
        if page.returncode != 0:
            raise RuntimeError(f"chromium failed on {url}:\n{page.stderr[-2000:]}")
        return page.stdout

    return dump_dom
