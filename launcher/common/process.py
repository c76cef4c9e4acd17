"""Whether a process id names a live process on this host.

process_alive(pid)      # False for a zombie that waits for its parent, and for None/0
"""

from __future__ import annotations

import os


def process_alive(pid: int | None) -> bool:
    """`pid` is a live process (not a zombie waiting for its parent)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (macOS): kill(0) said it exists
