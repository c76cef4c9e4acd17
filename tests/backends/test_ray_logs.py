"""What a Ray job's log keeps of the driver's output (backends/ray_logs.py).

The input is a real capture (`tests/golden/ray_job_log_killed_worker.txt`): the Ray job log of
a 2-worker run of tests/recipes/ray_tiny.py whose rank 1 was SIGKILLed and recovered, with
Ray's output unfiltered (as `launch --verbose` keeps it). The real cluster run is checked in
tests/backends/test_ray.py::test_killed_worker_group_restarts_and_resumes_exactly.
"""

from __future__ import annotations

import io
from pathlib import Path

from backends.ray_logs import FilteredStream, RayLogFilter

CAPTURE = Path(__file__).resolve().parents[1] / "golden" / "ray_job_log_killed_worker.txt"


def filtered(text: str, chunk: int = 7) -> str:
    out = io.StringIO()
    stream = FilteredStream(out, RayLogFilter())
    for start in range(0, len(text), chunk):  # lines arrive in pieces, as print() writes them
        stream.write(text[start : start + chunk])
    stream.close_report()
    return out.getvalue()


def test_a_killed_and_recovered_worker_is_one_line() -> None:
    raw = CAPTURE.read_text()
    assert "PreemptionWatcher" in raw and raw.count("\n") > 100  # what Ray prints
    lines = filtered(raw).splitlines()
    died = [line for line in lines if "died" in line]
    assert died == [
        "[launcher] rank 1 (pid 30439 on vm, 192.0.2.2) died: its process ended unexpectedly; "
        "Ray Train restarts the worker group (restart 1 of 2), which resumes from the newest "
        "checkpoint (launch --verbose shows Ray's report)"
    ]
    text = "\n".join(lines)
    for noise in ("PreemptionWatcher", "Traceback", "(raylet)", "TrainController", "pid=",
                  "Setting up process group", "\x1b["):  # fmt: skip
        assert noise not in text, noise
    # The run's own lines stay, in order, without Ray's prefix.
    assert lines[2].startswith("launcher: killed: 2 Ray Train workers")
    assert lines.index(died[0]) < next(i for i, text in enumerate(lines) if "resumed from" in text)
    assert lines[-1].startswith("[rank 0]   compare: launch runs")
    ours = raw.count("\x1b[0m [rank 0] ")  # every line the run's rank 0 printed
    assert ours == 30 and sum(line.startswith("[rank 0] ") for line in lines) == ours
    assert len(lines) == 3 + ours + 1  # Ray's job supervisor's 2 lines, the driver's 1


def test_a_report_no_restart_followed_is_told_at_the_end() -> None:
    report = [
        "\x1b[36m(TrainController pid=7)\x1b[0m [FailurePolicy] RAISE",
        "\x1b[36m(TrainController pid=7)\x1b[0m   Error count: 3 (max allowed: 2)",
        "\x1b[36m(TrainController pid=7)\x1b[0m [Rank 0 Error Snippet]:",
        "\x1b[36m(TrainController pid=7)\x1b[0m Traceback (most recent call last):",
        "\x1b[36m(TrainController pid=7)\x1b[0m RuntimeError: rank 0: worker exited with code 1",
        "(autoscaler +3s) Warning: The following resource request cannot be scheduled right now",
        "launcher: training failed: ...",
    ]
    assert filtered("\n".join(report) + "\n").splitlines() == [
        "(autoscaler +3s) Warning: The following resource request cannot be scheduled right now",
        "launcher: training failed: ...",
        "[launcher] rank 0 died: RuntimeError: rank 0: worker exited with code 1; no restarts "
        "left (2 allowed); the job fails (launch --verbose shows Ray's report)",
    ]


def test_a_survivor_reported_first_is_told_as_the_consequence_it_is() -> None:
    # Seen on the real cluster: rank 1 was SIGKILLed, Ray Train polled rank 0's gloo error first.
    gloo = (
        "RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] "
        "Connection closed by peer [127.0.0.1]:1966. This is typically caused by a remote worker "
        "crashing. Check the logs of the remote worker before reporting an error. GLHF!"
    )
    report = [
        "\x1b[36m(TrainController pid=7)\x1b[0m [FailurePolicy] RETRY",
        "\x1b[36m(TrainController pid=7)\x1b[0m   Error count: 1 (max allowed: 2)",
        "\x1b[36m(TrainController pid=7)\x1b[0m [Rank 0 Error Snippet]:",
        "\x1b[36m(TrainController pid=7)\x1b[0m Traceback (most recent call last):",
        f"\x1b[36m(TrainController pid=7)\x1b[0m {gloo}",
        "\x1b[36m(TrainController pid=7)\x1b[0m Attempting to start training worker group",
    ]
    (line,) = filtered("\n".join(report) + "\n").splitlines()
    assert line.startswith(
        "[launcher] rank 0 stopped because another rank's process died (its collective failed: "
        "RuntimeError: [/__w/pytorch"
    ), line
    assert line.endswith(
        "...); Ray Train restarts the worker group (restart 1 of 2), which resumes from the "
        "newest checkpoint (launch --verbose shows Ray's report)"
    ), line
