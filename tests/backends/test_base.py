"""What every backend shares (backends/base.py): the one log follower, for files and streams."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from backends.base import follow_file, undone_on_refusal, whole_lines


def _write_slowly(path: Path, lines: list[str], finished: threading.Event) -> None:
    time.sleep(0.2)  # the follower starts before the file exists
    with open(path, "w") as f:
        for line in lines:
            f.write(line)
            f.flush()
            time.sleep(0.1)
    finished.set()


def test_follow_file_waits_for_the_file_and_reads_until_the_writer_ends(tmp_path: Path) -> None:
    log, finished = tmp_path / "rank0.log", threading.Event()
    lines = ["one\n", "two\n", "three\n"]
    writer = threading.Thread(target=_write_slowly, args=(log, lines, finished))
    writer.start()
    assert list(follow_file(log, finished.is_set, poll_s=0.02)) == lines
    writer.join()


def test_pieces_of_text_become_whole_lines() -> None:
    assert list(whole_lines(["a\nb", "c\n", "", "d"])) == ["a\n", "bc\n", "d"]
    assert list(whole_lines([])) == []


def test_a_line_written_in_two_pieces_is_followed_as_one(tmp_path: Path) -> None:
    log, finished = tmp_path / "rank0.log", threading.Event()
    writer = threading.Thread(target=_write_slowly, args=(log, ["half ", "line\n"], finished))
    writer.start()
    assert list(follow_file(log, finished.is_set, poll_s=0.02)) == ["half line\n"]
    writer.join()


def test_follow_file_of_a_finished_writer_reads_what_is_there(tmp_path: Path) -> None:
    assert list(follow_file(tmp_path / "never.log", done=lambda: True)) == []
    (tmp_path / "done.log").write_text("a\nb")
    assert list(follow_file(tmp_path / "done.log", done=lambda: True)) == ["a\n", "b"]


def test_follow_file_asks_again_where_the_log_is(tmp_path: Path) -> None:
    early, late = tmp_path / "early.log", tmp_path / "late.log"
    asked: list[Path] = []

    def locate() -> Path:
        asked.append(late if len(asked) >= 2 else early)
        if len(asked) == 2:
            late.write_text("from the late file\n")
        return asked[-1]

    done = lambda: len(asked) >= 3  # noqa: E731 -- the third look finds the late file
    assert list(follow_file(locate, done, poll_s=0.01)) == ["from the late file\n"]
    assert not early.exists()


def test_a_refusal_removes_what_the_submission_wrote(tmp_path: Path) -> None:
    from launcher.errors import UserError

    run_dir = tmp_path / "out" / "exp" / "run"
    with pytest.raises(UserError), undone_on_refusal(run_dir):
        (run_dir / "ray_job").mkdir(parents=True)
        (run_dir / "launch.json").write_text("{}")
        raise UserError("the cluster is too small")
    assert list(tmp_path.iterdir()) == []  # the new folders went too, up to the first old one

    (run_dir / "checkpoints").mkdir(parents=True)  # a run being resumed: its files stay
    (run_dir / "checkpoints" / "last.ckpt").write_text("weights")
    with pytest.raises(UserError), undone_on_refusal(run_dir):
        (run_dir / "slurm").mkdir()
        (run_dir / "slurm" / ".submission_1.pkl").write_text("task")
        (run_dir / "checkpoints" / "new.tmp").write_text("")
        raise UserError("sbatch refused the job")
    assert sorted(p.name for p in run_dir.rglob("*")) == ["checkpoints", "last.ckpt"]

    with undone_on_refusal(run_dir):  # a submission that went through keeps its files
        (run_dir / "launch.json").write_text("{}")
    assert (run_dir / "launch.json").is_file()
