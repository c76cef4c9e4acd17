"""`chromium`: a headless browser for checking what a web page shows after its scripts ran.

scripts/chromium.sh installs Debian's chromium the first time. Where it cannot be installed
the browser tests fail loudly instead of skipping.

    dom = chromium(url)          # the page's DOM once its JavaScript has rendered
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "chromium.sh"


@pytest.fixture(scope="session")
def chromium() -> Callable[[str], str]:
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"could not set up chromium for the browser tests:\n{done.stderr}")
    binary = done.stdout.strip().splitlines()[-1]

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
