"""Atomic writes: the old contents or the new, never a half-written file or a stray temp file."""

from __future__ import annotations

import os
import socket

import pytest

from launcher.common.files import atomic_write_text, atomic_writer
from launcher.common.net import free_port


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "state.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new", durable=True)
    assert path.read_text() == "new"
    assert os.listdir(path.parent) == ["state.json"]


def test_the_file_gets_the_usual_permissions(tmp_path):
    atomic_write_text(tmp_path / "state.json", "{}")
    open(tmp_path / "plain.json", "w").close()  # what open() gives under this umask
    mode = (tmp_path / "plain.json").stat().st_mode & 0o777
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == mode


def test_a_failed_write_keeps_the_old_contents(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_writer(path) as f:
        f.write("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_before_rename_failure_discards_the_new_file(tmp_path):
    path = tmp_path / "ckpt.bin"

    def refuse() -> None:
        raise OSError("upload failed")

    with pytest.raises(OSError), atomic_writer(path, "wb", before_rename=refuse) as f:
        f.write(b"data")
    assert not path.exists() and os.listdir(tmp_path) == []


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
