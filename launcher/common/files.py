"""Crash-safe file writes: a reader sees the old file or the new one, never half of either.

    atomic_write_text(path, json.dumps(record))          # a small state file
    atomic_write_text(path, text, durable=True)          # survives a power cut too (fsync)
    with atomic_writer(path, "wb", durable=True) as f:   # stream into it (e.g. torch.save)
        torch.save(state, f)

Each write goes to a temporary file in the same folder (so the rename cannot cross file
systems), then `os.replace` gives it the final name. A failed write leaves no temporary file;
a killed one leaves `.NAME.XXXX.tmp`, which `remove_stale_temp_files(folder)` removes later.
The writer holds an exclusive `flock` on its temporary file until the rename, so a cleaner
tells a live writer's file (locked, kept) from a dead one's (free, removed), in any process
(flock is per open file; on NFS Linux maps it to a byte-range lock, which works across hosts).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
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
    fd, tmp, lock = _locked_temp_file(target)
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
    finally:
        os.close(lock)  # releases the flock: the file is renamed or gone by now
    if durable:
        fsync_dir(target.parent)


# What `_locked_temp_file` names a file: mkstemp's prefix, 8 random characters, its suffix.
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def _locked_temp_file(target: Path) -> tuple[int, str, int]:
    """A new temp file beside `target`: (fd, path, a dup of fd holding its exclusive flock).

    The dup keeps the lock after the caller closes `fd` (a flock belongs to the open file, not
    to the descriptor). A cleaner could take the file in the instant between its creation and
    the lock; the inode check then sees it gone and a fresh one is made.
    """
    while True:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        lock = os.dup(fd)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, tmp, lock
        except FileNotFoundError:
            pass
        os.close(lock)
        os.close(fd)


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """Delete the temporary files (`.NAME.XXXXXXXX.tmp`) in `folder` that no live writer holds.

    Returns (name, size in bytes) of each file removed. A file whose flock is free belongs to
    a writer that died (SIGKILL, a lost node) or to a version that took no lock; a locked one
    is being written right now, by this process or another, and is left alone.
    """
    removed: list[tuple[str, int]] = []
    for path in sorted(Path(folder).glob(".*.tmp")):
        if not _TEMP_NAME.fullmatch(path.name):
            continue  # not a name `_locked_temp_file` makes: someone else's file
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:  # gone meanwhile (renamed by its writer), or not ours to read
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a live writer holds it
                continue
            # Still the file we locked (its writer may have renamed it to its final name)?
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                continue
            size = os.fstat(fd).st_size
            os.unlink(path)
            removed.append((path.name, size))
        except FileNotFoundError:
            continue
        finally:
            os.close(fd)
    return removed


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


def try_lock(path: str | os.PathLike[str], owner: str) -> int | None:
    """Take an exclusive flock on `path` (created if needed) and write `owner` into it.

    Returns the descriptor that holds the lock (it lasts until closed or the process dies),
    or None when another open file holds it: `lock_owner(path)` then says whose it is.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, owner.encode(), 0)
    return fd


def lock_owner(path: str | os.PathLike[str]) -> str:
    """What the holder of the lock at `path` wrote there ("" if nothing is readable)."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def is_out_of_space(exc: BaseException) -> bool:
    """True when `exc` or what caused it is ENOSPC/EDQUOT (torch wraps it in a RuntimeError)."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, OSError) and link.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        link = link.__cause__ or link.__context__
    return False


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes free to us on the file system of `path`'s folder (None if it cannot be asked)."""
    try:
        stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def append_whole(path: str | os.PathLike[str], data: bytes, durable: bool = False) -> None:
    """Append `data` to `path` entirely or not at all: a failed write (a full disk) cuts the
    file back to its old size before the error is raised. `durable`: fsync before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)
