"""Crash-safe checkpoint files: atomic writes, manifest, fallbacks, safe loading, async saves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from launcher.errors import OutOfSpace, UserError
from launcher.train.checkpoint_store import (
    BackgroundSaver,
    CheckpointManager,
    atomic_torch_save,
    safe_load,
    to_cpu,
)

REPO = Path(__file__).resolve().parents[2]


def _state(step: int, size: int = 1000) -> dict:
    return {"w": torch.full((size,), float(step)), "step": step, "nested": {"l": [1, 2.5, "x"]}}


def test_keeps_the_last_k_and_lists_them_in_the_manifest(tmp_path: Path) -> None:
    manager = CheckpointManager(str(tmp_path), keep_last=2)
    for step in range(5):
        manager.save(_state(step), step)
    assert [e["step"] for e in manager.entries()] == [3, 4]
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == [
        "step-000000003.ckpt", "step-000000004.ckpt"
    ]  # fmt: skip
    path, state = manager.load_latest()
    assert state["step"] == 4 and torch.equal(state["w"], torch.full((1000,), 4.0))
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_async_save_returns_before_the_write_and_snapshots_the_state(tmp_path: Path) -> None:
    manager = CheckpointManager(str(tmp_path), async_save=True)
    state = _state(1, size=2_000_000)
    manager.save(state, 1)
    state["w"].fill_(-1.0)  # the training loop keeps changing tensors after save() returns
    manager.wait()
    _, loaded = manager.load_latest()
    assert torch.equal(loaded["w"], torch.full((2_000_000,), 1.0))
    # The next save reuses the first snapshot's buffers; the first file must be unaffected.
    first_buffer = manager._snapshot["w"]
    manager.save(_state(2, size=2_000_000), 2)
    assert manager._snapshot["w"] is first_buffer
    manager.wait()
    first = torch.load(tmp_path / "step-000000001.ckpt", weights_only=True)
    second = torch.load(tmp_path / "step-000000002.ckpt", weights_only=True)
    assert torch.equal(first["w"], torch.full((2_000_000,), 1.0))
    assert torch.equal(second["w"], torch.full((2_000_000,), 2.0))


@pytest.mark.parametrize("async_save", [False, True])
def test_before_write_starts_with_the_write_and_its_wait_ends_it(
    tmp_path: Path, async_save: bool
) -> None:
    """The trainer starts its metrics upload in `before_write` and waits for it in the callable
    that returns: the checkpoint must not be visible (under its name or in the manifest) until
    that wait returns. A blocking save overlaps the two (its bytes are written by then); an
    async one waits first, then writes (both at once slowed training on 2 cores)."""
    manager = CheckpointManager(str(tmp_path), async_save=async_save)
    seen = []

    def files() -> list[tuple[str, int]]:
        return sorted((p.name, p.stat().st_size) for p in tmp_path.iterdir() if ".tmp" in p.name)

    def wait() -> None:
        names = sorted(p.name for p in tmp_path.glob("*.ckpt"))
        seen.append(("wait", names, [e["step"] for e in manager.entries()], files()))

    def before_write():
        seen.append(("start", files()))
        return wait

    manager.save(_state(1), 1)
    manager.save(_state(2), 2, before_write=before_write)
    manager.wait()
    [start, (_, names, steps, temporary)] = seen
    assert start == ("start", [])  # called before anything of the new file exists
    assert names == ["step-000000001.ckpt"] and steps == [1]
    if async_save:
        assert temporary == []  # the upload is waited for before the write begins
    else:
        assert len(temporary) == 1 and temporary[0][1] > 1000 * 4  # written in full
    assert [e["step"] for e in manager.entries()] == [1, 2]


@pytest.mark.parametrize("async_save", [False, True])
def test_a_failing_wait_leaves_the_previous_checkpoints(tmp_path: Path, async_save: bool) -> None:
    manager = CheckpointManager(str(tmp_path), async_save=async_save)
    manager.save(_state(1), 1)

    def wait() -> None:
        raise RuntimeError("metrics upload failed")

    with pytest.raises(RuntimeError, match="metrics upload failed"):
        manager.save(_state(2), 2, before_write=lambda: wait)
        manager.wait()  # async: the writer's error surfaces here
    assert [e["step"] for e in manager.entries()] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "step-000000001.ckpt"]


def test_a_pickled_callable_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "evil.ckpt"
    torch.save({"model": {}, "hook": os.system}, bad)
    with pytest.raises(UserError, match="refusing to load .* pickled code"):
        safe_load(bad)
    manager = CheckpointManager(str(tmp_path))
    sha = atomic_torch_save({"hook": print}, tmp_path / "step-000000001.ckpt")
    manager._write_manifest([{"file": "step-000000001.ckpt", "sha256": sha, "step": 1}])
    with pytest.raises(UserError, match="unusable.* pickled code") as info:
        manager.load_latest()
    assert "weights_only" not in str(info.value) and "likely succeed" not in str(info.value)


def test_a_refused_or_corrupt_newest_checkpoint_falls_back_to_the_previous_good_one(
    tmp_path: Path,
) -> None:
    manager = CheckpointManager(str(tmp_path), keep_last=5)
    for step in (1, 2):
        manager.save(_state(step), step)
    # Newest: a malicious pickle that still matches its manifest entry (written by "us").
    sha = atomic_torch_save({"hook": os.system}, tmp_path / "step-000000003.ckpt")
    entries = manager.entries()
    manager._write_manifest([*entries, {"file": "step-000000003.ckpt", "sha256": sha, "step": 3}])
    with pytest.warns(UserWarning) as record:
        path, state = manager.load_latest()
    assert path.endswith("step-000000002.ckpt") and state["step"] == 2
    assert len(record) == 1
    message = str(record[0].message)
    assert "\n" not in message and "step-000000003.ckpt" in message
    assert "pickled code" in message and "resuming from the previous good one" in message
    assert "weights_only" not in message and "likely succeed" not in message
    # Corrupt newest (bytes flipped in place, the manifest's checksum catches it).
    newest = tmp_path / "step-000000002.ckpt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="checksum mismatch.*step-000000001.ckpt"):
        path, state = manager.load_latest()
    assert state["step"] == 1


def test_a_deleted_manifest_is_rebuilt_from_the_files_that_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manager = CheckpointManager(str(tmp_path), keep_last=3)
    for step in (4, 8, 12):
        manager.save(_state(step, size=50_000), step)
    (tmp_path / "manifest.json").unlink()
    # No manifest: the files themselves are what is on disk, and still count as checkpoints.
    assert CheckpointManager(str(tmp_path)).has_checkpoint()
    newest = tmp_path / "step-000000012.ckpt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside a tensor record: only its CRC-32 shows it
    newest.write_bytes(bytes(data))
    manager = CheckpointManager(str(tmp_path), keep_last=3)
    manager.recover()
    said = capsys.readouterr().err
    assert "rebuilt it from 2 verified checkpoint file(s)" in said
    assert "step-000000012.ckpt (CRC mismatch" in said
    assert [e["step"] for e in manager.entries()] == [4, 8]
    assert all(e["sha256"] for e in manager.entries())
    path, state = manager.load_latest()
    assert path.endswith("step-000000008.ckpt") and torch.equal(state["w"], _state(8, 50_000)["w"])
    # Without recover(), a scan verifies the files' CRCs too before loading them.
    (tmp_path / "manifest.json").unlink()
    with pytest.warns(UserWarning, match="CRC mismatch"):
        path, _ = CheckpointManager(str(tmp_path)).load_latest()
    assert path.endswith("step-000000008.ckpt")


_SLOW_WRITER = """
import sys, time, torch
from launcher.train.checkpoint_store import atomic_torch_save
def before_rename():
    print("written", flush=True)
    time.sleep(float(sys.argv[2]))
atomic_torch_save({"w": torch.ones(1000)}, sys.argv[1], before_rename=before_rename)
print("renamed", flush=True)
"""


def test_stale_temp_files_of_dead_writers_are_removed_and_live_ones_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def writer(name: str, hold: float) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(tmp_path / name),
                                 str(hold)], cwd=REPO, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline() == "written\n"
        return proc

    dead = writer("step-000000001.ckpt", 60)
    dead.send_signal(signal.SIGKILL)  # killed with its bytes on disk, before the rename
    dead.wait()
    (tmp_path / ".step-000000009.ckpt.old.tmp").write_bytes(b"x" * 1000)  # no lock: old writer
    live = writer("step-000000002.ckpt", 3)  # another process, still writing
    assert len(list(tmp_path.glob(".*.tmp"))) == 3
    CheckpointManager(str(tmp_path)).recover()
    assert "removed 2 temporary file(s)" in capsys.readouterr().err
    left = list(tmp_path.glob(".*.tmp"))
    assert len(left) == 1 and left[0].name.startswith(".step-000000002.ckpt.")
    assert live.stdout is not None and live.stdout.readline() == "renamed\n"
    assert live.wait() == 0
    assert torch.equal(safe_load(tmp_path / "step-000000002.ckpt")["w"], torch.ones(1000))
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "step-000000001.ckpt").exists()


def test_missing_manifest_entries_and_no_checkpoint(tmp_path: Path) -> None:
    manager = CheckpointManager(str(tmp_path / "none"))
    assert not manager.has_checkpoint()
    with pytest.raises(UserError, match="no checkpoint"):
        manager.load_latest()


_WRITER = """
import sys, torch
from launcher.train.checkpoint_store import CheckpointManager
manager = CheckpointManager(sys.argv[1], keep_last=2)
step = 0
while True:
    step += 1
    manager.save({"w": torch.full((3_000_000,), float(step)), "step": step}, step)
    print(step, flush=True)
"""


def test_sigkill_during_writes_always_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    """Kill a process that writes 12 MB checkpoints back to back, at 8 moments."""
    for attempt in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path)], cwd=REPO,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one checkpoint exists
        time.sleep(0.05 + 0.037 * attempt)  # somewhere inside a later write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        path, state = CheckpointManager(str(tmp_path)).load_latest()
        assert torch.equal(state["w"], torch.full((3_000_000,), float(state["step"])))


def test_snapshot_is_independent_and_reuses_buffers():
    import random

    weights = torch.arange(6.0).reshape(2, 3)
    rng = random.getstate()  # a tuple of 625 ints: shared, not copied element by element
    state = {"w": weights, "rng": rng, "steps": [1, 2], "meta": {"name": "x", "lr": 0.1}}
    first = to_cpu(state)
    assert first["rng"] == rng and first["rng"][1] is rng[1] and first["meta"] == state["meta"]
    assert first["steps"] == [1, 2] and first["steps"] is not state["steps"]
    weights += 1  # training goes on after save() returned
    state["steps"].append(3)
    assert torch.equal(first["w"], torch.arange(6.0).reshape(2, 3)) and first["steps"] == [1, 2]
    second = to_cpu(state, into=first)
    assert second["w"].data_ptr() == first["w"].data_ptr()  # the earlier buffer, refilled
    assert torch.equal(second["w"], weights) and second["steps"] == [1, 2, 3]


def test_async_saves_share_one_writer_thread_until_close(tmp_path: Path) -> None:
    """A thread per save cost the training thread ~0.7 ms each: one writer serves them all."""
    manager = CheckpointManager(str(tmp_path), keep_last=2, async_save=True)
    writers = []

    def note_thread() -> Callable[[], None]:
        writers.append(threading.current_thread())
        return lambda: None

    for step in range(1, 5):
        manager.save(_state(step), step, before_write=note_thread)
    manager.wait()
    assert len(writers) == 4 and len(set(writers)) == 1
    assert writers[0] is not threading.current_thread() and writers[0].is_alive()
    manager.close()
    assert not writers[0].is_alive()
    assert [e["step"] for e in manager.entries()] == [3, 4]
    manager.save(_state(5), 5)  # a closed manager starts a new writer when needed
    manager.close()
    assert [e["step"] for e in manager.entries()] == [4, 5]


def test_a_failed_async_save_is_raised_once_and_the_writer_goes_on(tmp_path: Path) -> None:
    manager = CheckpointManager(str(tmp_path), async_save=True)

    def refuse() -> Callable[[], None]:
        raise OSError("disk full")

    manager.save(_state(1), 1, before_write=refuse)
    with pytest.raises(OSError, match="disk full"):
        manager.wait()
    manager.wait()  # reported once
    manager.save(_state(2), 2)
    manager.close()
    assert [e["step"] for e in manager.entries()] == [2]


def test_a_save_in_flight_at_exit_is_finished(tmp_path: Path) -> None:
    """The writer thread is a daemon (an idle one must not hold the interpreter open), so an
    exit right after `save()` returns must still wait for the write."""
    script = (
        "import sys, time, torch\n"
        "from launcher.train.checkpoint_store import CheckpointManager\n"
        "m = CheckpointManager(sys.argv[1], async_save=True)\n"
        "def slow():\n"
        "    time.sleep(0.5)\n"
        "    return lambda: None\n"
        "m.save({'w': torch.ones(10)}, 7, before_write=slow)\n"
        "print('returned', flush=True)\n"
    )
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "returned" in out.stdout and time.monotonic() - started >= 0.5
    _, state = CheckpointManager(str(tmp_path)).load_latest()
    assert torch.equal(state["w"], torch.ones(10))


def test_background_saver_writes_a_snapshot_then_runs_later_jobs_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import launcher.train.checkpoint_store as store

    gate, write = threading.Event(), store.atomic_torch_save

    def slow_write(state, path, **kwargs):  # a write still in flight until the gate opens
        gate.wait(10)
        return write(state, path, **kwargs)

    monkeypatch.setattr(store, "atomic_torch_save", slow_write)
    saver, order = BackgroundSaver(), []
    state = _state(1, size=2_000_000)
    saver.save(state, tmp_path / "a.ckpt")
    state["w"].fill_(-1.0)  # the loop moves on at once; the file keeps the copy
    saver.run(lambda: order.append(("delete after a", (tmp_path / "a.ckpt").exists())))
    assert order == []  # queued behind the save, not run on this thread
    gate.set()
    saver.wait()
    assert order == [("delete after a", True)]
    assert torch.equal(safe_load(tmp_path / "a.ckpt")["w"], torch.full((2_000_000,), 1.0))
    saver.run(lambda: order.append("idle: runs here"))
    assert order[-1] == "idle: runs here"
    saver.close()
    assert not list(tmp_path.glob(".*tmp*"))


def test_a_background_failure_is_raised_by_the_next_wait_and_stops_later_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import launcher.train.checkpoint_store as store

    def full(state, path, **_):
        raise OutOfSpace(str(path), 10, 0)

    monkeypatch.setattr(store, "atomic_torch_save", full)
    saver, later = BackgroundSaver(), []
    saver.save(_state(1), tmp_path / "a.ckpt")
    saver.wait_idle()
    saver._submit(lambda: later.append("written"))  # after a failure nothing more is written
    saver.close()  # never raises: a failing run already has its error
    with pytest.raises(OutOfSpace):
        saver.wait()
    assert later == []
