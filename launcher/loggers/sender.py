"""`Sender`: applies records to one MLflow store from this process; what MLflow accepts.

    sender = Sender("http://127.0.0.1:5000")
    sender.apply({"op": "metrics", "run": run_id, "metrics": [["loss", 0.5, 1718000000000, 3]]})

A record is a JSON-able dict: `open` (create or continue a run), `params`, `tags`, `metrics`
(rows of [key, value, timestamp ms, step]), `artifact`, `status`. The live logger and the spool
replay (`launcher.loggers.spool`) send through the same `Sender`, so a record means the same
thing whether it went out at once or hours later. `launcher.loggers.remote_sender.RemoteSender`
runs this `Sender` in a helper process; both offer `RecordSender`, all the callers rely on.
Also here: MLflow's limits and the cleaning of params and tags to fit them (`flatten_params`,
`clean_tags`, `metric_records`).

A run that could not be created yet (store down at start-up) is named by a placeholder
`pending-<hex>`; applying its `open` record creates the run, tagged `RUN_REF_TAG`, so a
crash before the mapping is saved finds it again instead of creating a twin. Metrics at or below
the step the server already holds for their key are dropped (a run logs each key at increasing
steps), which makes re-sending a record harmless; params, tags and status are idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from math import isfinite
from typing import TYPE_CHECKING, Any, Protocol

from launcher.tracking.local_store import prepare_local_store
from launcher.tracking.reader import configure_http_env
from launcher.tracking.run_info import MASK, flatten, is_secret_key, mask_secrets

PENDING_PREFIX = "pending-"
# Under "mlflow.", which the MLflow UI hides (its system tags): bookkeeping, not the user's.
RUN_REF_TAG = "mlflow.launcher.runRef"
SYSTEM_PREFIX = "system/"  # sampled, not replayed by training: never deduplicated by step
MAX_METRICS_PER_REQUEST = 1000  # MLflow's limits
MAX_PARAMS_PER_REQUEST = 100
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_KEY_LENGTH = 250
# A server that accepts connections but never answers must count as down within seconds, not
# after a request's full timeout: it is asked for /health first, with this timeout.
PROBE_TIMEOUT_S = 2.0

log = logging.getLogger("launcher.loggers.mlflow")

if TYPE_CHECKING:
    from mlflow.utils.rest_utils import MlflowHostCreds


class RecordSender(Protocol):
    """What the logger and `spool.replay` use of a sender: `Sender`, or `RemoteSender`."""

    runs: dict[str, str]  # placeholder or stale id -> real run id
    experiment_ids: dict[str, str]  # run id -> experiment id
    warn: Callable[[str, str], None]  # (kind, message): how the owner reports a problem
    # At most this long per record, else a connection error (None: the store's own timeouts).
    # `RemoteSender` enforces it; `Sender` cannot interrupt MLflow's client (its HTTP timeout
    # applies).
    reply_timeout: float | None

    def apply(self, record: dict[str, Any]) -> bool:
        """Send one record; False when nothing needed sending. Raises on failure."""
        ...

    def resolve(self, ref: str) -> str:
        """The run id `ref` (a placeholder or an id) stands for, as far as known."""
        ...

    def forget_server_state(self) -> None:
        """After a connection error: ask the server again what it holds."""
        ...

    def close(self) -> None:
        """Done sending (a helper process exits)."""
        ...


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"opt": {"lr": 0.1}} -> {"opt.lr": "0.1"}; secrets masked, lengths cut to MLflow's."""
    flat = mask_secrets(flatten(params, prefix))
    return {k[:MAX_KEY_LENGTH]: str(v)[:MAX_PARAM_VALUE_LENGTH] for k, v in flat.items()}


def clean_tags(tags: dict[str, Any]) -> dict[str, str]:
    """Tags as MLflow stores them: strings, secrets masked, lengths cut."""
    return {
        k[:MAX_KEY_LENGTH]: MASK if is_secret_key(k) else str(v)[:MAX_TAG_VALUE_LENGTH]
        for k, v in tags.items()
    }


def probe_server(tracking_uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise a connection error unless a tracking server answers within `timeout` seconds.

    Any answer counts (even a 404 from a proxy without /health); other stores pass at once.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import requests

    requests.get(tracking_uri.rstrip("/") + "/health", timeout=timeout)


def metric_records(run: str, rows: list[list[Any]]) -> list[dict[str, Any]]:
    """`metrics` records of at most one MLflow request each."""
    n = MAX_METRICS_PER_REQUEST
    return [
        {"op": "metrics", "run": run, "metrics": rows[i : i + n]} for i in range(0, len(rows), n)
    ]


# MLflow's UI opens an experiment by its kind: without it, a GenAI traces "Overview"; with
# this, the runs table people compare training runs in.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
_TRAINING_KIND = (EXPERIMENT_KIND_TAG, "custom_model_development")


class Sender:
    """Applies records to one MLflow store; shared by the live logger and `launch sync`."""

    def __init__(self, tracking_uri: str, warn: Callable[[str, str], None] | None = None) -> None:
        configure_http_env()
        from mlflow.tracking import MlflowClient

        prepare_local_store(tracking_uri)  # a fresh sqlite store, made whole once
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.runs: dict[str, str] = {}  # placeholder or stale id -> real run id
        self.experiment_ids: dict[str, str] = {}  # run id -> experiment id
        self._server_marks: dict[str, dict[str, int]] = {}
        self.reply_timeout: float | None = None  # not enforced here (see RecordSender)
        self.warn: Callable[[str, str], None] = warn or (lambda kind, message: log.warning(message))
        self._creds: MlflowHostCreds | None = None
        if tracking_uri.startswith(("http://", "https://")):
            # Metrics go straight to the REST log-batch endpoint: MlflowClient.log_batch costs
            # ~15 us of GIL time per metric (entity objects, protobuf), plain JSON ~2 us. The
            # credentials are the ones MLflow's REST store builds for this URI (env, ~/.mlflow).
            from mlflow.utils.credentials import get_default_host_creds

            self._creds = get_default_host_creds(tracking_uri)

    def forget_server_state(self) -> None:
        """After a connection error: a timed-out send may still have landed; re-ask."""
        self._server_marks.clear()

    def resolve(self, ref: str) -> str:
        """The run id `ref` (a placeholder or an id) stands for, as far as known."""
        return self.runs.get(ref, ref)

    def close(self) -> None:
        """Nothing to release: MLflow's client holds no process."""

    def apply(self, record: dict[str, Any]) -> bool:
        """Send one record; False when nothing needed sending (all duplicates)."""
        from mlflow.entities import Param, RunTag

        op, run_id = record["op"], self.resolve(record["run"])
        if op == "open":
            self._open(record)
        elif op == "params":
            params = [Param(k, v) for k, v in record["params"].items()]
            for i in range(0, len(params), MAX_PARAMS_PER_REQUEST):
                self.client.log_batch(run_id, params=params[i : i + MAX_PARAMS_PER_REQUEST])
        elif op == "tags":
            tags = [RunTag(k, v) for k, v in record["tags"].items()]
            for i in range(0, len(tags), MAX_PARAMS_PER_REQUEST):
                self.client.log_batch(run_id, tags=tags[i : i + MAX_PARAMS_PER_REQUEST])
        elif op == "metrics":
            return self._metrics(run_id, record["metrics"])
        elif op == "artifact":
            self.client.log_artifact(run_id, record["path"], record.get("artifact_path"))
        elif op == "status":
            self.client.set_terminated(run_id, record["status"], end_time=record["end_time"])
        else:
            raise ValueError(f"unknown spool record op {op!r}")
        return True

    def _open(self, record: dict[str, Any]) -> None:
        from mlflow.exceptions import MlflowException

        ref = record["run"]
        if ref not in self.runs and not ref.startswith(PENDING_PREFIX):
            self.runs[ref] = ref  # a real id from a checkpoint: continue that run
        run_id = self.runs.get(ref) or self._find_by_ref(record)
        if run_id is not None:
            try:
                run = self.client.get_run(run_id)
                if run.info.status != "RUNNING":
                    self.client.update_run(run_id, status="RUNNING")
                self.runs[ref] = run_id
                self.experiment_ids[run_id] = run.info.experiment_id
                return
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                self.warn("open", f"run {run_id} is not in {self.tracking_uri}; starting a new run")
        experiment_id = self._experiment_id(record["experiment"], record.get("artifact_location"))
        tags = {**record.get("tags", {}), RUN_REF_TAG: ref}
        run = self.client.create_run(
            experiment_id,
            start_time=record.get("start_time"),
            tags=tags,
            run_name=record.get("run_name"),
        )
        self.runs[ref] = run.info.run_id
        self.experiment_ids[run.info.run_id] = experiment_id

    def _find_by_ref(self, record: dict[str, Any]) -> str | None:
        experiment = self.client.get_experiment_by_name(record["experiment"])
        if experiment is None:
            return None
        found = self.client.search_runs(
            [experiment.experiment_id], f"tags.`{RUN_REF_TAG}` = '{record['run']}'", max_results=1
        )
        return found[0].info.run_id if found else None

    def _experiment_id(self, name: str, artifact_location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                self.warn("open", f"MLflow experiment {name!r} was deleted; restoring it")
                self.client.restore_experiment(experiment.experiment_id)
            if EXPERIMENT_KIND_TAG not in experiment.tags:  # made by mlflow itself, not by us
                self.client.set_experiment_tag(experiment.experiment_id, *_TRAINING_KIND)
            return experiment.experiment_id
        try:
            return self.client.create_experiment(
                name, artifact_location=artifact_location, tags=dict([_TRAINING_KIND])
            )
        except MlflowException as exc:  # created by another process meanwhile
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:  # and deleted for good again: nothing to continue
                raise
            return experiment.experiment_id

    def _server_watermarks(self, run_id: str) -> dict[str, int]:
        """Highest step the server holds per key (its "latest" metric is the max step)."""
        if run_id not in self._server_marks:
            # RunData keeps its Metric objects (with their steps) private; its proto is public.
            latest = self.client.get_run(run_id).data.to_proto().metrics
            self._server_marks[run_id] = {m.key: m.step for m in latest}
        return self._server_marks[run_id]

    def _metrics(self, run_id: str, rows: list[list[Any]]) -> bool:
        marks = self._server_watermarks(run_id)
        fresh = [r for r in rows if r[3] > marks.get(r[0], -1) or r[0].startswith(SYSTEM_PREFIX)]
        for i in range(0, len(fresh), MAX_METRICS_PER_REQUEST):
            self._send_metrics(run_id, fresh[i : i + MAX_METRICS_PER_REQUEST])
        for key, _value, _ts, step in fresh:
            marks[key] = max(step, marks.get(key, step))
        return bool(fresh)

    def _send_metrics(self, run_id: str, rows: list[list[Any]]) -> None:
        if self._creds is None:
            from mlflow.entities import Metric

            metrics = [Metric(key, value, ts, step) for key, value, ts, step in rows]
            self.client.log_batch(run_id, metrics=metrics)
            return
        from mlflow.exceptions import MlflowException
        from mlflow.utils.rest_utils import http_request

        payload = {
            "run_id": run_id,
            "metrics": [
                {
                    "key": key,
                    "value": value if isfinite(value) else _json_number(value),
                    "timestamp": ts,
                    "step": step,
                }
                for key, value, ts, step in rows
            ],
        }
        resp = http_request(self._creds, "/api/2.0/mlflow/runs/log-batch", "POST", json=payload)
        if resp.status_code != 200:
            raise MlflowException(
                f"log-batch failed with error code {resp.status_code}: {resp.text[:300]}"
            )


def _json_number(value: float) -> str:
    """Protobuf JSON spells non-finite floats as strings; requests refuses a bare NaN."""
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
