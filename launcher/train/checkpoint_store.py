"""Crash-safe checkpoint files: atomic writes, a checksummed manifest, async saves.

A checkpoint is a plain dict of stateful parts (see ARCHITECTURE.md). Writes go to a
temporary file in the same directory, are fsynced, then renamed over the target; only then
does the manifest record the file and its SHA-256. A crash at any moment leaves the previous
checkpoints loadable. Loading uses `torch.load(weights_only=True)`: a checkpoint can hold
tensors, numbers, strings and containers, never code.

    manager = CheckpointManager("run/checkpoints/resume", keep_last=3, async_save=True)
    manager.recover()                  # at start: stale temp files, a lost manifest
    manager.save(state, step=120)      # returns after copying state to CPU
    path, state = manager.load_latest()

A file the manifest does not vouch for (no manifest, or an unreadable one) is verified by its
zip records' CRC-32s, which `torch.save` writes, before it is loaded.
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import json
import os
import queue
import shutil
import sys
import threading
import time
import warnings
import weakref
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import torch

from launcher.common.files import (
    atomic_write_text,
    atomic_writer,
    free_bytes,
    is_out_of_space,
    remove_stale_temp_files,
)
from launcher.common.threads import start_thread
from launcher.errors import OutOfSpace, UserError
from launcher.tracking.run_info import file_sha256

__all__ = [
    "BackgroundSaver",
    "CheckpointManager",
    "atomic_torch_save",
    "file_sha256",
    "remove_interrupted_writes",
    "safe_load",
    "to_cpu",
]

MANIFEST = "manifest.json"
# Immutable leaves: `to_cpu` shares them with the snapshot instead of copying.
_ATOMS = (int, float, str, bytes, bool, type(None))


def atomic_torch_save(
    state: dict[str, Any],
    path: str | os.PathLike[str],
    sync_dir: bool = True,
    before_rename: Callable[[], None] | None = None,
) -> str:
    """`torch.save` to `path` atomically (tmp + fsync + rename); returns the file's SHA-256.

    `sync_dir=False` leaves the directory's fsync (which makes the rename durable) to the
    caller, when it writes more into the same directory and syncs it once at the end.
    `before_rename` runs once the bytes are on disk, just before the file takes its name.
    A full disk raises `OutOfSpace` (the partial file is gone by then).
    """
    digest = hashlib.sha256()
    try:
        with atomic_writer(path, "wb", durable=sync_dir, before_rename=before_rename) as f:
            # torch.save needs only write() and flush(); its stub asks for a full IO[bytes].
            torch.save(state, cast(IO[bytes], _HashingWriter(f, digest)))
            if not sync_dir:  # durable=True would also sync the directory: the caller does
                f.flush()
                os.fsync(f.fileno())
    except OutOfSpace:  # a logger's spool, in before_rename: its own message
        raise
    except Exception as exc:
        if not is_out_of_space(exc):
            raise
        raise OutOfSpace(str(path), _nbytes(state), free_bytes(path)) from exc
    return digest.hexdigest()


def _nbytes(state: Any) -> int:
    """Bytes of the tensors in `state` (what its file needs, give or take the pickle)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_nbytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_nbytes(v) for v in state)
    return 0


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint without ever executing code from it (`torch.load(weights_only=True)`)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure means "not a usable checkpoint"
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise UserError(
                f"refusing to load {path}: it contains pickled code or objects "
                f"({_refusal_reason(exc)}). Checkpoints may hold only tensors and plain data."
            ) from exc
        raise


def _refusal_reason(exc: BaseException) -> str:
    """What torch refused, without its advice to retry with `weights_only=False`."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported global" in line:
            return line.rstrip(".")
    return "an object that is not a tensor or plain data"


def to_cpu(state: Any, into: Any = None) -> Any:
    """A deep copy of `state` with every tensor copied to CPU memory.

    `into` is an earlier snapshot of the same structure: tensors of matching shape and dtype
    are copied into its buffers instead of fresh memory (page-faulting in gigabytes of new
    memory costs several times the copy itself).
    """
    if isinstance(state, torch.Tensor):
        if (
            isinstance(into, torch.Tensor)
            and into.shape == state.shape
            and into.dtype == state.dtype
            and into is not state
        ):
            return into.copy_(state.detach())
        return state.detach().to("cpu", copy=True)
    if isinstance(state, _ATOMS):
        return state
    if isinstance(state, dict):
        old = into if isinstance(into, dict) else {}
        return {k: to_cpu(v, old.get(k)) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        if all(isinstance(v, _ATOMS) for v in state):  # e.g. Python's 625-int RNG state
            return state if isinstance(state, tuple) else list(state)
        same = into if isinstance(into, (list, tuple)) and len(into) == len(state) else None
        return type(state)(to_cpu(v, same[i] if same else None) for i, v in enumerate(state))
    return copy.deepcopy(state)


@dataclass
class _Job:
    """One async save for the writer thread."""

    state: dict[str, Any]
    name: str
    step: int
    before_write: Callable[[], Callable[[], None]] | None
    final: bool


class CheckpointManager:
    """Rolling checkpoints in one directory, listed newest-last in `manifest.json`.

    Its entries name files (this class writes them) or sharded checkpoint directories
    (`sharded_checkpoint.ShardedCheckpointManager` writes those); both load.
    """

    sharded = False  # whether save() takes every rank's shards (see ShardedCheckpointManager)

    def __init__(self, dirpath: str, keep_last: int = 3, async_save: bool = False) -> None:
        self.dirpath = Path(dirpath)
        self.keep_last = max(1, keep_last)
        self.async_save = async_save
        # One long-lived writer thread per manager, fed through `_jobs`: starting a thread per
        # save cost the training thread ~0.7 ms each (bench/overhead.py, 2 cores).
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._idle = threading.Event()  # set while no save is in flight
        self._idle.set()
        self._error: BaseException | None = None
        self._snapshot: Any = None  # the last async snapshot; its buffers are reused

    # -- saving ---------------------------------------------------------------------------
    def save(
        self,
        state: dict[str, Any],
        step: int,
        blocking: bool | None = None,
        before_write: Callable[[], Callable[[], None]] | None = None,
        final: bool = False,
    ) -> str:
        """Write `state` as `step-XXXXXXXX.ckpt`; async unless `blocking` or configured so.

        `before_write` is called as the write starts (in the writer thread when async) and
        returns a wait; the file takes its name and enters the manifest only after that wait.
        The trainer starts the upload of the metrics the checkpoint covers there. A blocking
        save waits for it once the file's bytes are on disk, so upload and write overlap while
        training waits. An async save waits for it before it serializes: nothing is gained by
        overlapping them in the background, and both at once (MLflow's helper process and the
        writer) took CPU from the training thread on 2 cores (bench/overhead.py: ~0.5%).
        `final` marks the last checkpoint of a finished run in the manifest (`is_finished`).
        """
        self.wait()  # at most one save in flight
        name = f"step-{step:09d}.ckpt"
        if blocking or not self.async_save:
            self._write(state, name, step, before_write, final=final)
        else:
            # The training loop may change tensors right after save() returns: snapshot them,
            # into the previous snapshot's buffers (that write has finished: see wait()).
            snapshot = self._snapshot = to_cpu(state, self._snapshot)
            self._idle.clear()
            self._jobs.put(_Job(snapshot, name, step, before_write, final))
            if self._writer is None:
                self._writer = start_thread(self._serve, "checkpoint-writer")
                _open_managers.add(self)
        return str(self.dirpath / name)

    def wait(self) -> None:
        """Block until the in-flight save (if any) is on disk; re-raise its error."""
        self.wait_idle()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def wait_idle(self) -> None:
        """Block until the in-flight save (if any) ends; its error stays for `wait()`."""
        self._idle.wait()

    def close(self) -> None:
        """Finish the save in flight (re-raising its error) and stop the writer thread."""
        try:
            self.wait()
        finally:
            if self._writer is not None:
                self._jobs.put(None)
                self._writer.join()
                self._writer = None
                _open_managers.discard(self)

    def _serve(self) -> None:
        """The writer thread: one job at a time until `close()` sends None."""
        while (job := self._jobs.get()) is not None:
            try:
                # see save(): async saves don't overlap the upload with the write
                self._write(job.state, job.name, job.step, job.before_write, False, job.final)
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                self._error = exc
            finally:
                job = None  # the snapshot stays referenced by _snapshot only
                self._idle.set()

    def _write(
        self,
        state: dict[str, Any],
        name: str,
        step: int,
        before_write: Callable[[], Callable[[], None]] | None = None,
        overlap: bool = True,
        final: bool = False,
    ) -> None:
        path = self.dirpath / name
        wait = before_write() if before_write is not None else None
        # One directory fsync, after the manifest's rename, makes both renames durable; until
        # then a crash leaves the old manifest, which does not name this file.
        try:
            if wait is not None and not overlap:
                wait()
                wait = None
            sha = atomic_torch_save(state, path, sync_dir=False, before_rename=wait)
            entries = [e for e in self.entries() if e["file"] != name]
            entries.append({"file": name, "sha256": sha, "size": path.stat().st_size,
                            "step": step, "time": time.time(), "final": final})  # fmt: skip
            stale, entries = entries[: -self.keep_last], entries[-self.keep_last :]
            try:
                self._write_manifest(entries)
            except OSError as exc:  # the old manifest stands: the new file is not listed
                if not is_out_of_space(exc):
                    raise
                path.unlink(missing_ok=True)
                raise OutOfSpace(str(self.dirpath / MANIFEST), 4096, free_bytes(path)) from exc
        except OutOfSpace as exc:
            exc.keep_too(self.kept())  # a logger's spool may have said what it keeps
            raise
        for entry in stale:  # only after the manifest no longer points at them
            remove_entry(self.dirpath, entry)

    def kept(self) -> str:
        """What a failed save leaves to resume from, for its error message."""
        entries = self.entries()
        if not entries:
            return "no checkpoint yet (the run would start over)"
        newest = entries[-1]
        name = newest.get("file") or newest["dir"]
        return f"the last good checkpoint, {self.dirpath / name} (step {newest['step']})"

    def _write_manifest(self, entries: list[dict[str, Any]]) -> None:
        # durable: syncs the directory too, which makes the checkpoint's rename durable as well
        text = json.dumps({"checkpoints": entries}, indent=1)
        atomic_write_text(self.dirpath / MANIFEST, text, durable=True)

    # -- loading --------------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        """Manifest entries, oldest first; without a readable manifest, the files on disk.

        Entries found by scanning have no checksum: `load_latest` verifies their zip CRCs.
        """
        listed = self._read_manifest()
        if listed is not None:
            return listed
        files = sorted(self.dirpath.glob("step-*.ckpt"))
        return [{"file": p.name, "sha256": None, "step": int(p.stem[5:])} for p in files]

    def _read_manifest(self) -> list[dict[str, Any]] | None:
        """The manifest's entries; None when it is missing or unreadable."""
        try:
            with open(self.dirpath / MANIFEST) as f:
                return list(json.load(f)["checkpoints"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def has_checkpoint(self) -> bool:
        return bool(self.entries())

    def is_finished(self) -> bool:
        """True when the newest checkpoint is a finished run's last one (read from the manifest)."""
        entries = self.entries()
        return bool(entries and entries[-1].get("final"))

    def recover(self) -> None:
        """Repair what a crash or a person left behind; call once, on one process, at start.

        Removes temporary files of writers that died mid-write (a live writer's stay), and
        rebuilds a missing or unreadable manifest from the checkpoint files that verify, so
        a resume goes on from them instead of step 0. Says what it did in one line each.
        """
        if not self.dirpath.is_dir():
            return
        remove_interrupted_writes(self.dirpath)
        if self._read_manifest() is not None:
            return
        files = sorted(self.dirpath.glob("step-*.ckpt"))
        if not files:
            return
        entries, bad = [], []
        for path in files:
            problem = _zip_problem(path)
            if problem is not None:
                bad.append(f"{path.name} ({problem})")
                continue
            entries.append({"file": path.name, "sha256": file_sha256(path),
                            "size": path.stat().st_size, "step": int(path.stem[5:]),
                            "time": path.stat().st_mtime})  # fmt: skip
        self._write_manifest(entries)
        skipped = f"; left out, unverified: {', '.join(bad)}" if bad else ""
        _say(f"{self.dirpath / MANIFEST} was missing or unreadable: rebuilt it from "
             f"{len(entries)} verified checkpoint file(s){skipped}")  # fmt: skip

    def load_latest(self) -> tuple[str, dict[str, Any]]:
        """The newest checkpoint that verifies; skips refused or corrupt ones with a warning."""
        entries = self.entries()
        problems = []
        for entry in reversed(entries):
            path = self.dirpath / entry.get("file", entry.get("dir", "?"))
            try:
                state = self._load_entry(entry, path)
            except Exception as exc:  # noqa: BLE001 - try the previous one
                reason = str(exc).removeprefix(f"refusing to load {path}: ")
                problems.append(f"{path.name}: {_first_line_of(reason)}")
                continue
            if problems:
                warnings.warn(
                    f"skipped unusable checkpoint(s) {'; '.join(problems)}; "
                    f"resuming from the previous good one, {path.name}",
                    stacklevel=2,
                )
            return str(path), state
        if not entries:
            raise UserError(f"no checkpoint in {self.dirpath} to resume from")
        raise UserError(
            f"every checkpoint in {self.dirpath} is unusable, nothing was deleted: "
            + "; ".join(problems)
            + ". Start over with --no-resume (and a new --name), or restore a backup."
        )

    def _load_entry(self, entry: dict[str, Any], path: Path) -> dict[str, Any]:
        """One entry's checkpoint, verified; ValueError (or UserError: refused) if unusable."""
        if "dir" in entry:  # a sharded checkpoint: every file verified, then read
            from launcher.train.sharded_checkpoint import load_entry

            return load_entry(self.dirpath, entry)
        if entry.get("sha256"):
            if file_sha256(path) != entry["sha256"]:
                raise ValueError("checksum mismatch (truncated or modified)")
        elif (problem := _zip_problem(path)) is not None:
            raise ValueError(problem)
        return safe_load(path)


class BackgroundSaver:
    """Checkpoint files written off the training thread, one at a time and in order.

        saver.save(state, "ckpts/epoch=3-step=1200.ckpt")   # returns after copying state
        saver.run(functools.partial(os.remove, "ckpts/epoch=2-step=900.ckpt"))  # after it
        saver.wait()                     # both done; re-raises a failure (OutOfSpace...)

    ModelCheckpoint's files go through it: the training thread pays for building and
    copying the state, not for serializing and fsyncing it (~30 ms an epoch on 2 cores for
    the 100k-parameter MLP of bench/overhead.py, 5% of its fit). Whatever needs the files
    waits first: the end of fit, `ckpt_path="best"`, a logger that uploads them, the next
    resume checkpoint (the state it records names them).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Event()
        self._idle.set()
        self._error: BaseException | None = None
        self._snapshot: Any = None  # the last snapshot, its buffers reused by the next
        self._thread: threading.Thread | None = None

    def save(self, state: dict[str, Any], path: str | os.PathLike[str]) -> None:
        """Write `state` to `path` atomically, in the background (one snapshot in flight)."""
        self.wait()  # the previous snapshot is written: its buffers can take this one
        snapshot = self._snapshot = to_cpu(state, self._snapshot)
        self._submit(lambda: atomic_torch_save(snapshot, path))

    def run(self, job: Callable[[], Any]) -> None:
        """Run `job` after what is queued: on the saver's thread, or here if nothing is."""
        if self._idle.is_set() and self._error is None:
            job()
            return
        self._submit(job)

    def _submit(self, job: Callable[[], Any]) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._jobs.put(job)
        if self._thread is None:
            self._thread = start_thread(self._serve, "checkpoint-files")
            _open_savers.add(self)

    def wait(self) -> None:
        """Block until everything queued is done; re-raise the first failure."""
        self._idle.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def wait_idle(self) -> None:
        """Block until everything queued is done; a failure stays for `wait()`."""
        self._idle.wait()

    def close(self) -> None:
        """Finish what is queued and stop the thread. Never raises: `wait()` reports failures
        (a run that is failing already has its error; this must not replace it)."""
        self._idle.wait()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
            _open_savers.discard(self)
        self._snapshot = None

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if self._error is None:  # after a failure, nothing more is written
                    job()
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                self._error = exc
            finally:
                job = None
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()


# Managers with a writer thread. The thread is a daemon (an idle one must not keep the
# interpreter alive), so a save still in flight at exit is finished here; atexit runs while
# daemon threads still do.
_open_managers: weakref.WeakSet[CheckpointManager] = weakref.WeakSet()
_open_savers: weakref.WeakSet[BackgroundSaver] = weakref.WeakSet()


@atexit.register
def _finish_saves_at_exit() -> None:
    for manager in list(_open_managers):
        manager.wait_idle()
    for saver in list(_open_savers):
        saver.wait_idle()


class _HashingWriter:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self.raw, self.digest = raw, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _first_line_of(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else "unreadable"


def _zip_problem(path: Path) -> str | None:
    """Why `path` is not an intact `torch.save` zip (CRC-32 of every record), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"not a complete checkpoint: {_first_line(exc)}"
    return None if broken is None else f"CRC mismatch in {broken} (truncated or modified)"


def remove_interrupted_writes(folder: str | os.PathLike[str]) -> None:
    """Remove the temp files of checkpoint writes that died mid-write from `folder` (a live
    writer's stay), saying so in one line; for the resume folder and ModelCheckpoint's."""
    if not os.path.isdir(folder):
        return
    removed = remove_stale_temp_files(folder)
    if removed:
        mb = sum(size for _, size in removed) / 1e6
        _say(f"removed {len(removed)} temporary file(s) of interrupted checkpoint writes "
             f"({mb:.1f} MB) from {folder}")  # fmt: skip


def remove_entry(dirpath: Path, entry: dict[str, Any]) -> None:
    """Delete what a manifest entry names: a checkpoint file or a sharded directory."""
    if "dir" in entry:
        shutil.rmtree(dirpath / entry["dir"], ignore_errors=True)
    else:
        (dirpath / entry["file"]).unlink(missing_ok=True)


def register_open_manager(manager: CheckpointManager) -> None:
    """A manager with a writer thread: its save in flight is finished at exit."""
    _open_managers.add(manager)


def say(message: str) -> None:
    """One line on stderr, as the trainer's other notes."""
    _say(message)


def _say(message: str) -> None:
    print(f"[launcher] {message}", file=sys.stderr, flush=True)
