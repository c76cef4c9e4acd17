"""RemoteSender: MLflow requests served by a helper process, and that process's lifecycle.

python -m pytest tests/loggers/test_remote_sender.py -x -q
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from launcher.loggers import remote_sender
from launcher.loggers.mlflow import MLflowLogger
from launcher.loggers.remote_sender import RemoteSender, SenderRejected
from tests.forking import fork_while

REPO = Path(__file__).resolve().parents[2]


def open_record(ref: str, experiment: str = "exp") -> dict:
    return {"op": "open", "run": ref, "experiment": experiment, "run_name": "r", "tags": {}}


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie still answers kill(0): it has exited, whoever reaps it (an orphan waits for
        # init, which may be slow to reap under load).
        if _is_zombie(pid):
            return True
        # A zombie of ours: reap it.
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


def test_records_land_in_the_store_through_the_child(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sender = RemoteSender(uri)
    child = remote_sender._children[uri]
    assert child.proc.pid != os.getpid() and child.alive()
    sender.apply(open_record("pending-abc"))
    run_id = sender.resolve("pending-abc")
    assert run_id != "pending-abc" and sender.experiment_ids[run_id]
    rows = [["loss", 1.0 / s, 1_700_000_000_000 + s, s] for s in range(1, 6)]
    assert sender.apply({"op": "metrics", "run": "pending-abc", "metrics": rows}) is True
    # The same steps again: the child's Sender drops them (the server already holds them).
    assert sender.apply({"op": "metrics", "run": run_id, "metrics": rows}) is False
    sender.apply({"op": "status", "run": run_id, "status": "FINISHED", "end_time": 1})
    history = MlflowClient(uri).get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"
    # A second sender for the same store reuses the running child.
    RemoteSender(uri)
    assert remote_sender._children[uri] is child


def test_a_refused_record_is_rejected_not_a_connection_error(tmp_path):
    sender = RemoteSender(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(SenderRejected, match="unknown spool record op 'bogus'"):
        sender.apply({"op": "bogus", "run": "x"})


def test_child_ignores_job_signals_and_a_dead_child_is_replaced(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sender = RemoteSender(uri)
    sender.apply(open_record("pending-1"))
    child = remote_sender._children[uri]
    os.kill(child.proc.pid, signal.SIGTERM)  # preemption signals are the trainer's business
    time.sleep(0.5)
    assert child.alive()
    sender.apply({"op": "tags", "run": "pending-1", "tags": {"a": "1"}})
    child.proc.kill()
    child.proc.wait()
    # A request to a dead child is a connection error (the logger spools and retries)...
    with pytest.raises(ConnectionError, match="sender process exited"):
        child.call(({"op": "tags", "run": "pending-1", "tags": {}}, {}, False))
    # ...and the next one starts a new child; the run mapping survived in the parent.
    sender.apply({"op": "tags", "run": "pending-1", "tags": {"b": "2"}})
    assert remote_sender._children[uri] is not child
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(uri).get_run(sender.resolve("pending-1")).data.tags
    assert tags["a"] == "1" and tags["b"] == "2"


def test_child_exits_when_the_training_process_is_killed(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from launcher.loggers import remote_sender
        uri = "sqlite:///{tmp_path / "mlflow.db"}"
        remote_sender.RemoteSender(uri)
        print(remote_sender._children[uri].proc.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        os.kill(child_pid, 0)  # running
    finally:
        parent.kill()
        parent.wait()
    assert wait_gone(child_pid), "the sender process outlived the training process"


def test_logger_in_process_and_through_the_child_store_the_same(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = {}
    for remote in (True, False):
        logger = MLflowLogger(
            f"exp-{remote}", tracking_uri=uri, save_dir=str(tmp_path), spool_dir=str(tmp_path / str(remote)),
            log_system_metrics=False, sender_process=remote,
        )  # fmt: skip
        logger.log_hyperparams({"lr": 0.1})
        for step in range(1, 4):
            logger.log_metrics({"loss": 1.0 / step}, step)
        logger.finalize("FINISHED")
        runs[remote] = MlflowClient(uri).get_run(logger.run_id)
    for run in runs.values():
        assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"}
        assert run.data.metrics == {"loss": pytest.approx(1 / 3)}


def test_starting_the_child_from_a_thread_survives_concurrent_forks(tmp_path):
    """The logger's thread starts the child while the training thread may fork DataLoader
    workers. Starting must not wait on anything a worker forked meanwhile (here lingering
    3 s) could hold, such as Popen's error pipe."""
    import threading

    took: list[float] = []
    senders: list[RemoteSender] = []

    def start() -> None:
        for i in range(5):
            begun = time.monotonic()
            senders.append(RemoteSender(f"sqlite:///{tmp_path / f'm{i}.db'}"))
            took.append(time.monotonic() - begun)

    forked = fork_while(threading.Thread(target=start), gap_s=0.002)
    assert len(took) == 5 and forked
    assert max(took) < 1.5, f"starting the sender process waited on a forked process: {took}"
    senders[-1].apply(open_record("pending-x"))  # and the child works


def test_child_exits_quietly_when_its_parent_dies_mid_request(tmp_path):
    # A SIGKILLed trainer leaves its request unanswered: the child's reply meets a broken pipe.
    child = subprocess.Popen(
        [sys.executable, "-m", "launcher.loggers.remote_sender", f"sqlite:///{tmp_path}/m.db"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    remote_sender._write(child.stdin, (open_record("pending-1"), {}, False))
    child.stdout.close()  # the parent is gone: nobody reads the reply
    child.stdin.close()
    child.wait(timeout=60)
    said = child.stderr.read().decode()
    assert "Traceback" not in said and "BrokenPipe" not in said, said
    # MLflow's own INFO lines as it creates the fresh store are not the helper's exit.
    exit_lines = [ln for ln in said.strip().splitlines() if " INFO mlflow." not in ln]
    assert len(exit_lines) <= 1, said
