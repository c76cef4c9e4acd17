"""Issue 15, items 1 and 4: a checkpoint never waits on the tracking store or the helper process.

Every MLflow record is appended to the run's spool before it is sent, so what a checkpoint
covers is durable locally at once; a hung or restarting server only delays the upload.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest
import torch

from launcher import Module, Trainer
from launcher.callbacks import Callback
from launcher.loggers.mlflow import MLflowLogger
from launcher.loggers.spool import Spool, replay_spool
from tests.resume_harness import (
    assert_bitwise_equal,
    final_state,
    make_spec,
    metric_steps,
    newest_step,
    run_worker,
    start_worker,
    wait_for,
)

# 160 samples / batch 8 = 20 steps per epoch, 4 epochs of slow steps: ~12 s of training.
OVERRIDES = {
    "n_train": "160",
    "step_sleep": "0.15",
    "trainer.checkpoint_every_n_steps": "3",
    "trainer.max_epochs": "4",
}
TOTAL_STEPS = 80


def _mlflow_runs(out: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    experiment = client.get_experiment_by_name("tiny")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _training_started(log: Path, before: int) -> bool:
    """The attempt printed its model summary (fit has begun) after byte `before` of the log."""
    return log.exists() and "Total params" in log.read_text()[before:]


@pytest.mark.slow
def test_sigkills_in_the_first_seconds_resume_from_a_checkpoint_into_one_mlflow_run(
    tmp_path: Path,
) -> None:
    ref = make_spec(tmp_path / "ref", "ref", overrides=OVERRIDES)
    assert run_worker(ref, tmp_path / "ref.log") == 0, (tmp_path / "ref.log").read_text()
    reference = final_state(ref)

    spec = make_spec(tmp_path / "out", "early", overrides=OVERRIDES)
    log = tmp_path / "early.log"
    run_record = Path(spec.run_dir) / "mlflow_run.json"
    # Killed as soon as the run is named, before any checkpoint: the relaunch starts at step 0
    # and must continue that run, not open a second one.
    proc = start_worker(spec, log)
    assert wait_for(lambda: run_record.exists() or proc.poll() is not None, 120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kills = 0
    for delay in (1.0, 2.0, 3.0, 1.5):  # seconds after fit began (the process start is
        before = log.stat().st_size  # ~10 s of imports on a loaded 2-core machine)
        step_before = newest_step(spec)
        proc = start_worker(spec, log)
        assert wait_for(
            lambda b=before, p=proc: _training_started(log, b) or p.poll() is not None, 120
        )
        wait_for(lambda p=proc: p.poll() is not None, delay)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        # The first checkpoint does not wait for MLflow's helper process or the store.
        assert newest_step(spec) > step_before, (
            f"killed {delay} s into fit: no new checkpoint (still step {newest_step(spec)})"
        )
    assert kills >= 3, "the run finished before 3 kills; make steps slower"
    assert run_worker(spec, log) == 0, log.read_text()[-3000:]

    resumed = final_state(spec)
    assert_bitwise_equal(reference["state_dict"], resumed["state_dict"], "model")
    assert resumed["global_step"] == TOTAL_STEPS
    assert log.read_text().count("resumed from") >= kills
    runs = _mlflow_runs(tmp_path / "out")
    assert len(runs) == 1, [(r.info.run_id, r.info.status) for r in runs]
    assert runs[0].info.status == "FINISHED"
    steps = metric_steps(tmp_path / "out", runs[0].info.run_id, "train_loss")
    assert steps == list(range(TOTAL_STEPS)), f"duplicated or missing steps: {steps}"


class _HungServer:
    """Accepts TCP connections and never answers (a wedged proxy, a stopped process)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.uri = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)  # kept open, never read or answered

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_server_that_never_answers_stalls_neither_checkpoints_nor_the_exit(tmp_path):
    server = _HungServer()
    try:
        logger = MLflowLogger("hung", run_name="r", tracking_uri=server.uri,
                              save_dir=str(tmp_path), log_system_metrics=False)  # fmt: skip
        logger.log_hyperparams({"lr": 0.1})
        waits = []
        for step in range(1, 41):
            logger.log_metrics({"loss": 1.0 / step}, step=step)
            if step % 10 == 0:  # what a checkpoint does before its file takes its name
                start = time.perf_counter()
                logger.request_flush()()
                waits.append(time.perf_counter() - start)
            time.sleep(0.02)
        start = time.perf_counter()
        logger.finalize("FINISHED")
        exit_s = time.perf_counter() - start
    finally:
        server.close()
    assert max(waits) < 0.5, f"a checkpoint waited {max(waits):.1f} s for a hung server"
    # The exit waits for an attempt in flight (its /health probe times out after 2 s), then
    # asks once more (1 s): the server may be back.
    assert exit_s < 4.5, f"the exit waited {exit_s:.1f} s for a hung server"
    # Everything is in the spool, for the next attempt or `launch sync`.
    marks = Spool(str(tmp_path)).pending_watermarks(logger.state_dict()["run_ref"])
    assert marks == {"loss": 40}


class _SwitchableServer:
    """A TCP proxy to a real server that can hang (accept, never answer) and come back, as a
    restarting or wedged server does; held data goes on once it forwards again."""

    def __init__(self, target_uri: str, hanging: bool) -> None:
        self.target = ("127.0.0.1", int(target_uri.rsplit(":", 1)[1]))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.uri = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.forwarding = threading.Event()
        if not hanging:
            self.forwarding.set()
        self.closed = False
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _hold(self) -> bool:
        while not self.forwarding.wait(0.05):
            if self.closed:
                return False
        return True

    def _serve(self, conn: socket.socket) -> None:
        if not self._hold():
            return
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            conn.close()
            return
        self.conns.append(upstream)
        threading.Thread(target=self._pump, args=(upstream, conn), daemon=True).start()
        self._pump(conn, upstream)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self._hold():
                    return
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.closed = True
        self.sock.close()
        for conn in self.conns:
            conn.close()


def _sender_processes(uri: str) -> list:
    import psutil

    return [p for p in psutil.Process().children()
            if "launcher.loggers.remote_sender" in p.cmdline() and uri in p.cmdline()]  # fmt: skip


@pytest.mark.slow
def test_a_server_back_at_exit_gets_every_record_and_the_end_state(
    live_mlflow_server, tmp_path, caplog
):
    """The store hung at start-up (a restart), then came back before the run ended: the
    last send happens at exit whatever the retry timer says, and the run ends FINISHED."""
    from mlflow.tracking import MlflowClient

    caplog.set_level(logging.WARNING, "launcher.loggers.mlflow")
    server = _SwitchableServer(live_mlflow_server.uri, hanging=True)
    try:
        logger = MLflowLogger("back-at-exit", run_name="r", tracking_uri=server.uri,
                              save_dir=str(tmp_path), log_system_metrics=False,
                              retry_interval=600)  # fmt: skip
        logger.log_hyperparams({"lr": 0.1})
        for step in range(30):
            logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        assert wait_for(lambda: any("unreachable" in r.getMessage() for r in caplog.records), 30)
        server.forwarding.set()
        for step in range(30, 60):
            logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        assert _sender_processes(server.uri)
        logger.finalize("FINISHED")
        assert not _sender_processes(server.uri)  # the helper process exits with the run
    finally:
        server.close()
    assert not Spool(str(tmp_path)).has_pending()
    client = MlflowClient(live_mlflow_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("back-at-exit").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"}
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
    assert steps == list(range(60))


@pytest.mark.slow
def test_a_server_that_hangs_at_exit_is_given_up_on_within_seconds(live_mlflow_server, tmp_path):
    """It answered during the run and hangs at the end (no probe is due): the last send is
    given up on within seconds, and `launch sync` delivers the rest once it is back."""
    from mlflow.tracking import MlflowClient

    server = _SwitchableServer(live_mlflow_server.uri, hanging=False)
    try:
        logger = MLflowLogger("hang-at-exit", run_name="r", tracking_uri=server.uri,
                              save_dir=str(tmp_path), log_system_metrics=False)  # fmt: skip
        for step in range(20):
            logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        logger.flush()
        run_id = logger.run_id
        assert run_id is not None
        server.forwarding.clear()
        for step in range(20, 40):
            logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        start = time.perf_counter()
        logger.finalize("FINISHED")
        exit_s = time.perf_counter() - start
        assert not _sender_processes(server.uri)
        assert Spool(str(tmp_path)).has_pending()
    finally:
        server.close()
    assert exit_s < 6.0, f"the exit waited {exit_s:.1f} s for a hung server"
    assert replay_spool(str(tmp_path), live_mlflow_server.uri) > 0
    client = MlflowClient(live_mlflow_server.uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "loss"))
    assert steps == list(range(40))


class _StepSleep(Module):
    """A small model logging many metrics per step (a big spool to replay), slow steps."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        time.sleep(0.03)
        loss = self.layer(batch[0]).pow(2).mean()
        for i in range(40):
            self.log(f"m{i}", loss + i, on_step=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        from torch.utils.data import DataLoader, TensorDataset

        return DataLoader(TensorDataset(torch.randn(240, 4)), batch_size=8)  # 30 steps


class _EpochClock(Callback):
    """Epoch durations; stops the server after epoch 2, starts it again after epoch 4."""

    def __init__(self, server) -> None:
        self.server = server
        self.times: list[float] = []
        self.start = 0.0
        self.helpers: list[threading.Thread] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self.start)
        action = {2: self.server.stop, 4: self.server.start}.get(trainer.current_epoch)
        if action is not None:  # off the training thread: only the logger may feel it
            self.helpers.append(threading.Thread(target=action, daemon=True))
            self.helpers[-1].start()


@pytest.mark.slow
def test_a_server_restarting_mid_run_never_slows_an_epoch(live_mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    clock = _EpochClock(live_mlflow_server)
    logger = MLflowLogger("restart", run_name="r", tracking_uri=live_mlflow_server.uri,
                          save_dir=str(tmp_path), log_system_metrics=False,
                          retry_interval=0.5)  # fmt: skip
    trainer = Trainer(max_epochs=14, logger=logger, callbacks=[clock], log_every_n_steps=1,
                      enable_progress_bar=False, enable_model_summary=False,
                      checkpoint_every_n_steps=5, run_dir=str(tmp_path / "run"),
                      seed=0)  # fmt: skip
    trainer.fit(_StepSleep())
    for helper in clock.helpers:
        helper.join()
    live_mlflow_server.start()
    median = statistics.median(clock.times)
    assert max(clock.times) <= 1.5 * median, [round(t, 2) for t in clock.times]
    replay_spool(str(tmp_path))  # what a slow restart left for `launch sync`, if anything
    client = MlflowClient(live_mlflow_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("restart").experiment_id])
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "m0"))
    assert steps == sorted(set(steps)) and len(steps) == 420, steps


def test_a_full_disk_under_the_spool_fails_the_run_once_and_the_store_gets_everything(
    tmp_path,
):
    """Issue 15 item 3: the spool's disk fills. The logger thread says nothing (no traceback),
    the training thread gets one `OutOfSpace` naming the spool, the spool keeps only whole
    lines, and the records it could not take reach the reachable store directly, the run's
    FAILED among them, each step once."""
    from mlflow.tracking import MlflowClient

    from launcher.errors import OutOfSpace
    from tests.resume_harness import fill_disk, tmpfs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # the store is on another disk
    crashes: list = []
    threading.excepthook, hook = crashes.append, threading.excepthook
    try:
        with tmpfs(tmp_path / "small", "1m") as small:
            logger = MLflowLogger("full", run_name="r", tracking_uri=uri, save_dir=str(tmp_path),
                                  spool_dir=str(small / "run"), log_system_metrics=False)  # fmt: skip
            for step in range(20):
                logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
            logger.request_flush()()  # a checkpoint: spooled
            fill_disk(small)
            raised = None
            for step in range(20, 2000):
                try:
                    logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
                except OutOfSpace as exc:
                    raised = exc
                    break
                time.sleep(0.005)
            assert raised is not None, "a full spool disk was never reported"
            assert str(raised).startswith(f"out of disk space writing {small / 'run'}/mlflow_")
            with pytest.raises(OutOfSpace):  # a checkpoint cannot claim these records
                logger.request_flush()()
            lines = (small / "run" / "mlflow_spool.jsonl").read_bytes().split(b"\n")
            assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])
            logger.finalize("failed")  # quiet now: the run is failing on it already
            # Everything reached the store: the spool is gone (the run record stays).
            assert "mlflow_spool.jsonl" not in os.listdir(small / "run")
    finally:
        threading.excepthook = hook
    assert not crashes, crashes
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("full").experiment_id])
    assert run.info.status == "FAILED"
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
    assert steps == list(range(step)), steps
