"""Crash-safe spool of MLflow records: every record is written here before it is sent.

    launch sync outputs/mnist/run-1        # or: replay_spool("outputs/mnist/run-1")

The live logger appends each batch of records here (durably) and then sends the spool from
its cursor, so what a checkpoint covers is safe on local disk whatever the store or the helper
process is doing; while the store is unreachable the records simply stay here.

Files in the spool directory (normally the run directory):

    mlflow_spool.jsonl        one record a line (see `launcher.loggers.sender`), appended + fsync'd per batch
    mlflow_spool.state.json   replay cursor: bytes acked, pending-ref -> run id, tracking URI
    mlflow_spool.lock         flock: one replayer at a time (the live logger or `launch sync`)
    mlflow_spool.append.lock  flock, held briefly: appends, cursor writes, starting the file over
    mlflow_run.json           the run this directory logs to, decided before anything is sent

A finalized logger whose records were all acked removes the spool's files (`remove_if_delivered`);
`mlflow_run.json` stays.

Exactly once: the cursor advances (atomically, fsync'd) after the records the store acked. A
record sent but not acked (crash, or a timeout after the store kept it) is sent again, which the
`Sender` makes harmless (see `launcher.loggers.sender`). Appending never waits for a replay in
flight (which may be waiting on the network): they take different locks.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from launcher.common.files import append_whole, atomic_write_text, free_bytes, is_out_of_space
from launcher.errors import OutOfSpace, UserError
from launcher.loggers.sender import RecordSender, Sender, probe_server
from launcher.tracking.reader import is_connection_error, resolve_tracking_uri

SPOOL_FILE = "mlflow_spool.jsonl"
STATE_FILE = "mlflow_spool.state.json"
LOCK_FILE = "mlflow_spool.lock"
APPEND_LOCK_FILE = "mlflow_spool.append.lock"
RUN_FILE = "mlflow_run.json"

log = logging.getLogger("launcher.loggers.mlflow")


class Spool:
    """An append-only JSONL file plus an atomically replaced cursor/state file."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / SPOOL_FILE
        self.state_path = self.directory / STATE_FILE
        # The state a full disk kept from its file: newer than the file, for this process.
        self._unsaved: dict[str, Any] | None = None

    def has_pending(self) -> bool:
        """True when records were spooled and not yet acked by the server."""
        size = self.path.stat().st_size if self.path.exists() else 0
        return size > self.read_state()["offset"]

    def read_state(self) -> dict[str, Any]:
        """The replay cursor: {"offset": bytes acked, "runs": {ref: run id}, "tracking_uri"}."""
        if self._unsaved is not None:
            return dict(self._unsaved)
        try:
            state = json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            state = {}
        return {"offset": 0, "runs": {}, "tracking_uri": None, **state}

    def write_state(self, state: dict[str, Any]) -> bool:
        """Replace the cursor atomically and durably: an acked record is never sent twice.

        False when a full disk refused it: this process then keeps it in memory (another may
        send the acked records again, which the Sender makes harmless)."""
        try:
            atomic_write_text(self.state_path, json.dumps(state), durable=True)
        except OSError as exc:
            if not is_out_of_space(exc):
                raise
            self._unsaved = dict(state)
            return False
        self._unsaved = None
        return True

    def update_state(self, **changes: Any) -> None:
        """Change some fields of the state (under the append lock: no write is lost)."""
        with self._flock(APPEND_LOCK_FILE):
            self.write_state({**self.read_state(), **changes})

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the replayer's lock (blocks while another replayer holds it)."""
        with self._flock(LOCK_FILE):
            yield

    @contextmanager
    def _flock(self, name: str) -> Iterator[None]:
        # flock is per open file: it also keeps two threads of one process apart.
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / name, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def start_over_if_sent(self, offset: int, runs: dict[str, str]) -> None:
        """Save the cursor; when everything up to the end is acked, empty the file."""
        with self._flock(APPEND_LOCK_FILE):
            state = {**self.read_state(), "offset": offset, "runs": runs}
            if offset and offset == self.path.stat().st_size:
                # Cursor first: a crash in between only means re-sending acked records,
                # which the Sender makes harmless; one kept in memory only: the file stays.
                if self.write_state({**state, "offset": 0}):
                    os.truncate(self.path, 0)
                else:
                    self.write_state(state)
            else:
                self.write_state(state)

    def remove_if_delivered(self) -> bool:
        """Delete the spool's files when every record was acked (the run's logger is closed);
        True if it did. A later append starts a fresh spool; the run record stays."""
        with self.locked(), self._flock(APPEND_LOCK_FILE):
            if self.has_pending():
                return False
            for name in (SPOOL_FILE, STATE_FILE, LOCK_FILE, APPEND_LOCK_FILE):
                (self.directory / name).unlink(missing_ok=True)
        return True

    def append(self, records: list[dict[str, Any]], tracking_uri: str | None = None) -> None:
        """Append `records` durably (fsync) before returning, all of them or none: a full
        disk raises `OutOfSpace` and leaves the file as it was."""
        if not records:
            return
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        path = self.path
        try:
            with self._flock(APPEND_LOCK_FILE):
                if tracking_uri and self.read_state()["tracking_uri"] != tracking_uri:
                    path = self.state_path
                    self.write_state({**self.read_state(), "tracking_uri": tracking_uri})
                    path = self.path
                # A crash mid-write leaves a partial last line: close it, replay skips it.
                if self.path.exists() and self.path.stat().st_size:
                    if _last_byte(self.path) != b"\n":
                        lines = b"\n" + lines
                append_whole(self.path, lines, durable=True)
        except OSError as exc:
            if not is_out_of_space(exc):
                raise
            raise OutOfSpace(str(path), len(lines), free_bytes(path)) from exc

    def pending(self, offset: int) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """(end offset, record) for each complete line after `offset`; None for a torn line."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(offset)
            for line in f:
                if not line.endswith(b"\n"):
                    return  # being written, or torn by a crash: not ours to ack yet
                offset += len(line)
                try:
                    yield offset, json.loads(line)
                except json.JSONDecodeError:
                    yield offset, None

    def pending_watermarks(self, run_ref: str) -> dict[str, int]:
        """Highest spooled-but-unsent step per metric key of one run."""
        state = self.read_state()
        refs = {run_ref, state["runs"].get(run_ref, run_ref)}
        refs |= {ref for ref, rid in state["runs"].items() if rid in refs}
        marks: dict[str, int] = {}
        for _, record in self.pending(state["offset"]):
            if record and record.get("op") == "metrics" and record.get("run") in refs:
                for key, _value, _ts, step in record["metrics"]:
                    marks[key] = max(step, marks.get(key, step))
        return marks


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def replay(sender: RecordSender, spool: Spool, deadline: float | None = None) -> int:
    """Send every unacked record of `spool` in order; return how many were sent.

    Raises the connection error (after saving the cursor) if the store goes away, and
    `TimeoutError` (one too) once `time.monotonic()` passes `deadline` with records left.
    """
    sent = 0
    with spool.locked():
        state = spool.read_state()
        sender.runs.update(state["runs"])
        offset = start = state["offset"]
        try:
            for end, record in spool.pending(start):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"MLflow: {sent} records sent, the rest left for later")
                if record is not None:  # a torn line is skipped, its bytes acked like a record's
                    try:
                        if sender.apply(record):
                            sent += 1
                    except Exception as exc:
                        if is_connection_error(exc):
                            sender.forget_server_state()
                            raise
                        sender.warn(record["op"], f"MLflow rejected {record['op']}: {exc}")
                offset = end
        finally:
            if offset != start or sender.runs != state["runs"]:
                spool.start_over_if_sent(offset, dict(sender.runs))
    return sent


def record_run(directory: str | Path, run_ref: str, experiment: str) -> None:
    """Write down (durably) which run `directory` logs to, before anything is sent."""
    path = Path(directory) / RUN_FILE
    record = {"run_ref": run_ref, "experiment": experiment, "status": None}
    try:
        if json.loads(path.read_text()) == record:
            return
    except (OSError, json.JSONDecodeError):
        pass
    Path(directory).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record), durable=True)


def record_run_status(directory: str | Path, status: str) -> None:
    """Note the run's final status beside its record (a FINISHED run is not continued)."""
    path = Path(directory) / RUN_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    atomic_write_text(path, json.dumps({**record, "status": status}))


def recorded_run(directory: str | Path, experiment: str) -> str | None:
    """The run a killed predecessor in `directory` logged to (None: none, or it finished).

    A relaunch that found no checkpoint to resume from continues that run, not a new one.
    """
    try:
        record = json.loads((Path(directory) / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("experiment") != experiment or record.get("status") == "FINISHED":
        return None
    ref = record.get("run_ref")
    return ref if isinstance(ref, str) and ref else None


def replay_spool(spool_dir: str, tracking_uri: str | None = None) -> int:
    """Upload what a run spooled while MLflow was unreachable; returns the records sent.

    n = replay_spool("outputs/mnist/run-1")      # the URI the run used, unless given
    """
    spool = Spool(spool_dir)
    if not spool.path.exists():
        if (Path(spool_dir) / RUN_FILE).exists():
            return 0  # a run whose records were all delivered: its spool was removed
        raise UserError(f"no MLflow spool in {spool_dir} ({SPOOL_FILE}): nothing to sync")
    if not spool.has_pending():
        return 0
    uri = resolve_tracking_uri(tracking_uri or spool.read_state()["tracking_uri"], spool_dir)
    try:
        probe_server(uri)
        return replay(Sender(uri), spool)
    except Exception as exc:
        if is_connection_error(exc):
            raise UserError(
                f"cannot reach MLflow at {uri}; start the server and run `launch sync` again "
                "(what was sent so far is recorded, nothing is sent twice)"
            ) from exc
        raise
