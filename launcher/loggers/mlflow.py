"""`MLflowLogger`: metrics queued on the training thread, sent in batches by a background thread.

    logger = MLflowLogger("mnist", run_name="lr-0.01", save_dir="outputs", spool_dir=run_dir)
    logger.log_hyperparams({"optimizer": {"lr": 0.01}, "hf_token": "hf_abc"})  # token -> ***
    logger.log_metrics({"train/loss": 0.7}, step=10)                          # ~1 us, no I/O
    logger.finalize("FINISHED")

Store: `tracking_uri`, else `$MLFLOW_TRACKING_URI`, else `sqlite:///<save_dir>/mlflow.db`
(artifacts in `<save_dir>/mlartifacts`). Every record is first written to a crash-safe spool in
`spool_dir` (see `launcher.loggers.spool`) and then sent from it by the background thread, so a
checkpoint (`request_flush`) only waits for a local append: never for the network, a hung
server or the helper process's start-up. While the store is unreachable the records stay
spooled; the thread retries every `retry_interval` seconds and sends them in order once the
store is back, or `launch sync RUN_DIR` uploads them later. The MLflow client itself runs in a
helper process (`sender_process=True`, see `launcher.loggers.remote_sender`), so its
interpreter time is not taken from training. The run is named locally before anything is sent
(a placeholder `run_ref`, written to `spool_dir/mlflow_run.json`); the store creates it on the
first successful send, and until then `run_id` is None and the checkpoint holds the placeholder.

At the end (`finalize`, or the process exiting) the thread sends once more whatever the retry
timer says, bounded (`_EXIT_*`: a store that is down or hangs costs the exit a second or
three); what is left stays spooled for `launch sync`; a fully delivered spool is removed, and
the helper process exits. A full disk under the spool: what it cannot take is kept in memory
and sent to the store directly, and the training thread gets one `OutOfSpace` naming the spool
(a checkpoint waiting on it fails too), so the run ends FAILED with one message, exit 1.

Resume: `load_state_dict` (before any logging) continues the checkpointed run (status back to
RUNNING). A resumed job re-logs the steps between its checkpoint and the crash; each (key,
step) is stored once because a key's steps only increase: the logger drops steps at or below
what it logged, what the spool holds, and (checked on the background thread) what the server
holds (so a key logged twice at one step keeps its first value). `system/*` metrics are
samples (CPU, RAM, GPU) taken at the current step and are exempt.

Lightning's `MLFlowLogger` is the same logger with Lightning's defaults (experiment
"lightning_logs", store under "./mlruns") and its `name`/`version` (experiment id, run id):

    logger = MLFlowLogger(experiment_name="mnist", log_model=True, prefix="fold1")

`log_model=True` uploads ModelCheckpoint's best/last files when the run ends, `"all"` each one
after it is saved (`after_save_checkpoint`), each under a folder named after the file with
Lightning's `metadata.yaml` and `aliases.txt`. `synchronous=True` waits for every logging call
to be stored; by default it is queued (Lightning's default waits).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import uuid
from argparse import Namespace
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from launcher.common.files import free_bytes, is_out_of_space
from launcher.common.secrets import mask_secrets, mask_text
from launcher.common.threads import start_thread
from launcher.errors import OutOfSpace
from launcher.loggers.base import (
    Logger,
    add_prefix,
    already_done,
    check_state_keys,
    new_checkpoints,
    params_dict,
    run_status,
)
from launcher.loggers.remote_sender import RemoteSender
from launcher.loggers.sender import (
    PENDING_PREFIX,
    PROBE_TIMEOUT_S,
    RecordSender,
    Sender,
    clean_tags,
    flatten_params,
    metric_records,
    probe_server,
)
from launcher.loggers.spool import RUN_FILE, Spool, record_run, record_run_status, replay
from launcher.loggers.system_metrics import NodeMetricsReader, SystemMetricsSampler
from launcher.tracking.reader import is_connection_error, local_artifact_root, resolve_tracking_uri

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger("launcher.loggers.mlflow")

_TICK_S = 1.0  # how often queued metrics are sent; flush() does not wait for it
_READY_TIMEOUT_S = 60.0
# At the end (finalize, or the process exiting) the spool is sent once more, whatever the
# retry timer says (the store may be back), within these bounds: a server that is down
# refuses at once, one that hangs is given up on within seconds; the rest stays spooled for
# `launch sync`. A store that answers gets up to `_EXIT_DRAIN_S` to take a backlog. (Start-up
# work, a fresh local store or the helper process's import of mlflow, is waited for: it is not
# the store hanging. An in-process `Sender` waits out MLflow's HTTP timeout instead.)
_EXIT_PROBE_S = 1.0
_EXIT_REPLY_S = 3.0
_EXIT_DRAIN_S = 20.0
_FIRST_SAMPLE_S = 2.0
_STATE_KEYS = {"run_id", "run_ref", "experiment_id", "experiment", "watermarks"}


class MLflowLogger(Logger):
    """Log to MLflow from global rank 0 without slowing the training loop (see module doc)."""

    name: Any = "mlflow"
    LOGGER_JOIN_CHAR = "-"  # Lightning's: `prefix-key`

    def __init__(
        self,
        experiment_name: str = "default",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        save_dir: str = "outputs",
        tags: dict[str, Any] | None = None,
        spool_dir: str | None = None,
        log_system_metrics: bool = True,
        system_metrics_interval: float = 10.0,
        retry_interval: float = 5.0,
        sender_process: bool = True,
        log_model: bool | Literal["all"] = False,
        prefix: str = "",
        artifact_location: str | None = None,
        run_id: str | None = None,
        synchronous: bool | None = None,
    ) -> None:
        """`log_model`, `prefix`, `artifact_location`, `run_id`, `synchronous`: Lightning's.

        `run_id` continues that run; `artifact_location` is where a new experiment keeps its
        artifacts (default: beside a local store's database).
        """
        if log_model not in (True, False, "all"):
            raise ValueError(f"log_model={log_model!r}: use True, False or 'all'")
        self.tracking_uri = resolve_tracking_uri(tracking_uri, save_dir)
        self.log_model = log_model
        self._prefix = prefix
        self._artifact_location = artifact_location or local_artifact_root(self.tracking_uri)
        self._synchronous = bool(synchronous)
        self._checkpoint_callback: Any = None  # log_model=True: uploaded at finalize
        self._logged_model_time: dict[str, float] = {}
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.spool = Spool(spool_dir or save_dir)
        self.spool_dir = spool_dir  # the run dir: other nodes leave their system metrics there
        self.log_system_metrics = log_system_metrics
        self.system_metrics_interval = system_metrics_interval
        self.retry_interval = retry_interval
        self.sender_process = sender_process
        self._tags = clean_tags(mask_secrets(tags or {}))
        # The real id once the run exists; a given `run_id` is continued.
        self._ref = run_id or f"{PENDING_PREFIX}{uuid.uuid4().hex}"
        self._watermarks: dict[str, int] = {}  # metric key -> highest step accepted
        self._last_step = 0
        # ("metrics", step, {key: value}, time) | ("flush", Event) | (op, record fields);
        # append/popleft are thread-safe.
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._journal_lock = threading.Lock()  # queue -> spool, from any thread, in order
        # A full disk: records the spool could not take (oldest first), sent to the store
        # directly; the error is raised once on the training thread (`_raise_out_of_space`).
        self._unspooled: list[dict[str, Any]] = []
        self._out_of_space: OutOfSpace | None = None
        self._out_of_space_raised = False
        self._flush_waiters: list[threading.Event] = []  # set after the next send attempt
        self._probe_due = True  # ask a server for /health first, and again after it failed
        self._wake = threading.Event()
        self._ready = threading.Event()
        self._stop = False
        self._closed = False
        self._reopened = False
        self._final_status: str | None = None
        self._thread: threading.Thread | None = None
        self._sender: RecordSender | None = None  # made on the background thread
        self._offline = False
        self._next_retry = 0.0
        self._warned: set[str] = set()
        self.experiment_id: str | None = None

    # -- the training thread's side ---------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        """The MLflow run id; None while the store has been unreachable since start-up."""
        if not self._closed:  # reading it after finalize does not reopen the run
            self._start()
            self._ready.wait(_READY_TIMEOUT_S)
        return self._known_run_id()

    @property
    def known_run_id(self) -> str | None:
        """The run id if it is known already; never starts the logger or opens the run."""
        return self._known_run_id()

    def _known_run_id(self) -> str | None:
        return None if self._ref.startswith(PENDING_PREFIX) else self._ref

    @property
    def version(self) -> str | None:
        """Lightning's name for the run id."""
        return self.run_id

    @property
    def state_key(self) -> str:
        return "mlflow"

    @property
    def save_dir(self) -> str | None:
        """The folder of a local store (the sqlite database's, a file store); None for a server."""
        uri = self.tracking_uri
        if uri.startswith("sqlite:///"):
            return str(Path(uri[len("sqlite:///") :]).parent)
        if uri.startswith("file:"):
            return uri[len("file:") :].removeprefix("//")
        return None

    @property
    def experiment(self) -> MlflowClient:
        """An `MlflowClient` on this logger's store, once the run exists (`experiment.get_run(run_id)`)."""
        from mlflow.tracking import MlflowClient

        _ = self.run_id  # waits for the run to be created
        return MlflowClient(self.tracking_uri)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self._thread is None:
            self._start()
        if self._out_of_space is not None:
            self._raise_out_of_space()
        if self._prefix:
            metrics = add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)
        if step is None:
            step = self._last_step
        marks = self._watermarks
        for key in metrics:
            if step <= marks.get(key, -1):  # already logged before a resume: drop it
                metrics = {k: v for k, v in metrics.items() if step > marks.get(k, -1)}
                break
        if not metrics:
            return
        for key in metrics:
            marks[key] = step
        self._last_step = step
        self._queue.append(("metrics", step, dict(metrics), time.time()))
        if self._synchronous:
            self.flush()

    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        self._put(("params", {"params": flatten_params(params_dict(params))}))
        if self._synchronous:
            self.flush()

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._put(("tags", {"tags": clean_tags(mask_secrets(tags))}))

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        self._put(("artifact", {"path": os.path.abspath(path), "artifact_path": artifact_path}))

    def flush(self) -> None:
        """Spool what is queued, then wait for one attempt to send it (not for a retry)."""
        self._journal()
        self._raise_out_of_space()
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        done = threading.Event()
        self._flush_waiters.append(done)
        self._wake.set()
        while not done.wait(1.0):
            if not thread.is_alive():
                return

    def request_flush(self) -> Callable[[], None]:
        """A wait that makes everything logged so far durable in the local spool.

        What a checkpoint waits for: a local append, never the network or the helper process.
        """
        if self._thread is None:
            return already_done  # nothing was logged
        return self._spool_or_raise

    def _spool_or_raise(self) -> None:
        """What a checkpoint waits for; a full disk fails it (its file must not claim records
        that are not durable)."""
        self._journal()
        if self._unspooled and self._out_of_space is not None:
            raise self._out_of_space  # (the writer thread's: the training thread is told too)

    def _raise_out_of_space(self) -> None:
        """Raise the spool's `OutOfSpace` once (then the run fails and finalizes quietly)."""
        if self._out_of_space is not None and not self._out_of_space_raised:
            self._out_of_space_raised = True
            raise self._out_of_space

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """`log_model="all"` (or True with `save_top_k=-1`): upload the new files now."""
        if self.log_model == "all" or (
            self.log_model is True and getattr(checkpoint_callback, "save_top_k", None) == -1
        ):
            self._log_checkpoints(checkpoint_callback)
        elif self.log_model is True:
            self._checkpoint_callback = checkpoint_callback

    def finalize(self, status: str = "success") -> None:
        if self._closed:
            return
        if self._checkpoint_callback is not None:
            self._log_checkpoints(self._checkpoint_callback)
        status = run_status(status)
        self._put(("status", {"status": status, "end_time": int(time.time() * 1000)}))
        self._closed = True
        self._final_status = status
        try:
            record_run_status(self.spool.directory, status)
        except OSError as exc:  # a full disk: said once already; the store gets the status
            if not is_out_of_space(exc):
                raise
        self._stop_thread()  # logging again (a later stage) reopens the run
        atexit.unregister(self._flush_at_exit)
        if self._unspooled:
            log.warning(
                "MLflow unreachable at %s and no room in %s: %d records of the run (its end "
                "state among them) could not be kept",
                mask_text(self.tracking_uri),
                self.spool.path,
                len(self._unspooled),
            )
        elif not self.spool.remove_if_delivered():
            log.warning(
                "MLflow unreachable at %s: the run's records are kept in %s; upload "
                "them with `launch sync %s`",
                mask_text(self.tracking_uri),
                self.spool.path,
                self.spool.directory,
            )

    def state_dict(self) -> dict[str, Any]:
        # Never waits for the run to exist (a cold sender process takes seconds to create it):
        # until then the checkpoint holds the placeholder, which finds the run on resume.
        return {
            "run_id": self._known_run_id(),
            "run_ref": self._ref,
            "experiment_id": self.experiment_id,
            "experiment": self.experiment_name,
            "watermarks": dict(self._watermarks),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        check_state_keys("MLflowLogger", state_dict, _STATE_KEYS)
        if self._thread is not None:
            raise RuntimeError("MLflowLogger.load_state_dict must be called before any logging")
        ref = state_dict.get("run_ref") or state_dict.get("run_id")
        if ref:
            self._ref = ref
        if ref and ref.startswith(PENDING_PREFIX) and state_dict.get("experiment"):
            # A placeholder is looked up by tag in its experiment: the run's, whatever this
            # job would have named a new one (a real run id continues its run anywhere).
            self.experiment_name = state_dict["experiment"]
        marks = {k: int(v) for k, v in (state_dict.get("watermarks") or {}).items()}
        if ref and self.spool.path.exists():
            for key, step in self.spool.pending_watermarks(ref).items():
                marks[key] = max(step, marks.get(key, step))
        self._watermarks = marks

    def _log_checkpoints(self, checkpoint_callback: Any) -> None:
        """Queue the callback's files not uploaded yet (or changed since), as Lightning does."""
        for mtime, path, score in new_checkpoints(checkpoint_callback, self._logged_model_time):
            stem = Path(path).stem
            self.log_artifact(path, stem)
            # Beside the spool, not in a temporary folder: the upload happens later.
            folder = Path(self.spool.directory) / "checkpoint-metadata" / stem
            folder.mkdir(parents=True, exist_ok=True)
            keys = ("monitor", "mode", "save_last", "save_top_k", "save_weights_only")
            metadata = {
                "score": float(score) if score is not None else None,
                "original_filename": Path(path).name,
                "Checkpoint": {k: getattr(checkpoint_callback, k) for k in keys
                               if hasattr(checkpoint_callback, k)},
            }  # fmt: skip
            best = path == getattr(checkpoint_callback, "best_model_path", None)
            (folder / "metadata.yaml").write_text(yaml.dump(metadata, default_flow_style=False))
            (folder / "aliases.txt").write_text(str(["latest", "best"] if best else ["latest"]))
            for name in ("metadata.yaml", "aliases.txt"):
                self.log_artifact(str(folder / name), stem)
            self._logged_model_time[path] = mtime

    def _put(self, item: tuple[str, dict[str, Any]]) -> None:
        self._start()
        self._queue.append(item)

    def _start(self) -> None:
        if self._thread is None:
            if self._closed:
                # Logging after finalize (trainer.test() after fit, as Lightning allows):
                # continue the run; it gets its last status back at exit unless finalized again.
                self._closed = self._stop = False
                self._ready.clear()
                self._reopened = True
            # Named and written down before anything can be lost: a relaunch that finds no
            # checkpoint continues this run (see `recorded_run`), never opens a second one.
            try:
                record_run(self.spool.directory, self._ref, self.experiment_name)
            except OSError as exc:  # a full disk: the run fails at the next logging call
                if not is_out_of_space(exc):
                    raise
                path = str(self.spool.directory / RUN_FILE)
                self._out_of_space = OutOfSpace(path, 4096, free_bytes(path))
            self._queue.appendleft(("open", self._open_record()))
            self._thread = start_thread(self._loop, "mlflow-logger")
            atexit.register(self._flush_at_exit)

    def _flush_at_exit(self) -> None:
        if self._reopened and self._final_status is not None:
            self.finalize(self._final_status)
            return
        self._stop_thread()  # an un-finalized logger still hands its queue to MLflow or the spool

    def _stop_thread(self) -> None:
        """Spool what is queued, let the thread make its last (bounded) send, close the sender."""
        self._journal()
        thread = self._thread
        if thread is None:
            return
        self._stop = True
        self._wake.set()
        thread.join()
        self._thread = None
        if self._sender is not None:
            self._sender.close()  # the helper process exits now, not with this process

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(message)

    # -- the background thread --------------------------------------------------------------

    def _loop(self) -> None:
        try:
            # MLflow's client code runs in a helper process unless told otherwise: its
            # interpreter time would otherwise be taken from training (see remote_sender).
            make = RemoteSender if self.sender_process else Sender
            self._sender = make(self.tracking_uri, warn=self._warn_once)
            self._journal()  # after what a crashed predecessor left: that goes first
            self._send_spooled()
        finally:
            self._ready.set()
        sampler = self._system_sampler()
        nodes = NodeMetricsReader(self.spool_dir) if sampler and self.spool_dir else None
        # A first sample soon (short runs had none), then every interval.
        next_sample = time.monotonic() + min(_FIRST_SAMPLE_S, self.system_metrics_interval)
        while True:
            self._wake.wait(_TICK_S)
            self._wake.clear()
            now = time.monotonic()
            if sampler is not None and (now >= next_sample or self._stop):
                next_sample = now + self.system_metrics_interval
                self._queue.append(("metrics", self._last_step, sampler.sample(), time.time()))
                for stamp, values in nodes.new_samples() if nodes else ():
                    self._queue.append(("metrics", self._last_step, values, stamp))
                sampler = None if self._stop else sampler
            waiters, self._flush_waiters = self._flush_waiters, []
            self._journal()
            if self._stop:
                self._send_spooled(final=True)
            elif not self._offline or now >= self._next_retry:
                self._send_spooled()
            for done in waiters:
                done.set()
            if self._stop and not self._queue:
                return

    @property
    def _made_sender(self) -> RecordSender:
        """The sender `_loop` made first thing; everything after it on that thread uses it."""
        if self._sender is None:
            raise RuntimeError("MLflowLogger: records sent before the sender was made")
        return self._sender

    def _system_sampler(self) -> SystemMetricsSampler | None:
        if not self.log_system_metrics:
            return None
        try:
            return SystemMetricsSampler()
        except ImportError as exc:  # psutil missing: train on without system metrics
            self._warn_once("system", f"no system metrics: {exc}")
            return None

    def _open_record(self) -> dict[str, Any]:
        return {
            "op": "open",
            "run": self._ref,
            "experiment": self.experiment_name,
            "artifact_location": self._artifact_location,
            "run_name": self.run_name,
            "tags": self._tags,
            "start_time": int(time.time() * 1000),
            "uri": self.tracking_uri,
        }

    def _journal(self) -> None:
        """Move what is queued to the spool, in order and durably (any thread may call it)."""
        with self._journal_lock:
            records: list[dict[str, Any]] = []
            rows: list[list[Any]] = []
            while self._queue:
                item = self._queue.popleft()
                if item[0] == "metrics":
                    _, step, metrics, stamp = item
                    stamp_ms = int(stamp * 1000)
                    for key, value in metrics.items():
                        try:
                            rows.append([key, float(value), stamp_ms, step])
                        except (TypeError, ValueError):
                            self._warn_once(
                                "value", f"metric {key}={value!r} is not a number: dropped"
                            )
                    continue
                records += metric_records(self._ref, rows)
                rows = []
                records.append({"op": item[0], "run": self._ref, **item[1]})
            records = self._unspooled + records + metric_records(self._ref, rows)
            try:
                self.spool.append(records, self.tracking_uri)
            except OutOfSpace as exc:  # kept in memory and sent directly (`_send_unspooled`)
                self._unspooled = records
                if self._out_of_space is None:
                    exc.kept = (f"the run's MLflow records up to the disk filling, in {exc.path} "
                                "(`launch sync` sends what the store lacks)")  # fmt: skip
                    self._out_of_space = exc
                return
            self._unspooled = []

    def _send_spooled(self, final: bool = False) -> None:
        """Send the spool from its cursor; a connection error (or a timeout) means: later.

        `final`: the last attempt, within the `_EXIT_*` bounds.
        """
        was_offline = self._offline
        sender = self._made_sender
        sender.reply_timeout = _EXIT_REPLY_S if final else None
        try:
            if self._probe_due:  # from this thread: a hung server is found before the
                # helper process has even started
                probe_server(self.tracking_uri, _EXIT_PROBE_S if final else PROBE_TIMEOUT_S)
                self._probe_due = False
            deadline = time.monotonic() + _EXIT_DRAIN_S if final else None
            sent = replay(sender, self.spool, deadline)
            sent += self._send_unspooled(sender)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            self._probe_due = True
            self._adopt_run_id()  # the run may have been created before the store went away
            self._go_offline(exc)
            return
        self._offline = False
        self._adopt_run_id()
        if sent and was_offline:
            log.info(
                "MLflow reachable again at %s: sent %d spooled records",
                mask_text(self.tracking_uri),
                sent,
            )

    def _send_unspooled(self, sender: RecordSender) -> int:
        """Send the records a full disk kept out of the spool, after the spool (in order)."""
        sent = 0
        while True:
            with self._journal_lock:
                if not self._unspooled:
                    return sent
                record = self._unspooled[0]
            try:
                sent += sender.apply(record)
            except Exception as exc:
                if is_connection_error(exc):
                    raise
                sender.warn(record["op"], f"MLflow rejected {record['op']}: {exc}")
            with self._journal_lock:
                if self._unspooled and self._unspooled[0] is record:
                    self._unspooled.pop(0)

    def _go_offline(self, exc: Exception) -> None:
        self._offline = True
        self._next_retry = time.monotonic() + self.retry_interval
        self._warn_once(
            "offline",
            f"MLflow unreachable at {mask_text(self.tracking_uri)} ({type(exc).__name__}); "
            f"training goes on, records are spooled to {self.spool.path} and sent "
            f"when it is back",
        )

    def _adopt_run_id(self) -> None:
        self._ref = self._made_sender.resolve(self._ref)
        self.experiment_id = self._made_sender.experiment_ids.get(self._ref, self.experiment_id)


class MLFlowLogger(MLflowLogger):
    """Lightning's `MLFlowLogger`: its defaults, and `name`/`version` = experiment id/run id.

    logger = MLFlowLogger("mnist", tracking_uri="http://localhost:5000", log_model="all")
    Trainer(logger=logger)
    """

    def __init__(
        self,
        experiment_name: str = "lightning_logs",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, Any] | None = None,
        save_dir: str | None = "./mlruns",
        log_model: bool | Literal["all"] = False,
        prefix: str = "",
        artifact_location: str | None = None,
        run_id: str | None = None,
        synchronous: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Lightning's arguments; `kwargs` are `MLflowLogger`'s own (`spool_dir`...).

        No system metrics unless `log_system_metrics=True`: Lightning's logs none, and code
        written for it compares what it finds in the store."""
        kwargs.setdefault("log_system_metrics", False)
        super().__init__(
            experiment_name,
            run_name=run_name,
            tracking_uri=tracking_uri,
            save_dir=save_dir or "./mlruns",
            tags=tags,
            log_model=log_model,
            prefix=prefix,
            artifact_location=artifact_location,
            run_id=run_id,
            synchronous=synchronous,
            **kwargs,
        )

    @property
    def name(self) -> str | None:
        """The experiment id, as Lightning's (None while the store is unreachable)."""
        _ = self.run_id  # waits for the run, which creates the experiment
        return self.experiment_id
