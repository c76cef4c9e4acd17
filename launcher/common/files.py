"""Crash-safe file writes: a reader sees the old file or the new one, never half of either.

    atomic_write_text(path, json.dumps(record))          # a small state file
    atomic_write_text(path, text, durable=True)          # survives a power cut too (fsync)
    with atomic_writer(path, "wb", durable=True) as f:   # stream into it (e.g. torch.save)
        torch.save(state, f)

Each write goes to a temporary file in the same folder (so the rename cannot cross file
systems), then `os.replace` gives it the final name. A failed write leaves no temporary file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str],
    mode: str = "w",
    durable: bool = False,
    before_rename: Callable[[], None] | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on a clean exit it becomes `path`.

    `durable`: fsync the file before the rename and the folder after it. `before_rename` runs
    once the data is written and before the file takes its name (a failure there discards it).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; give it what open() would (0666 less the umask), so
        # checkpoints stay readable by the group on shared clusters as they were.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(target.parent)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not safe while
# writer threads create files.
_UMASK = _read_umask()


def atomic_write_text(path: str | os.PathLike[str], text: str, durable: bool = False) -> None:
    """Replace `path`'s contents with `text` atomically (see `atomic_writer`)."""
    with atomic_writer(path, "w", durable=durable) as f:
        f.write(text)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename in `folder` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
