"""MLflowLogger against a real `mlflow server` (tests/fixtures_mlflow.py) and a local sqlite store.

python -m pytest tests/loggers/test_mlflow.py -x -q
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from launcher.cli.runs import register
from launcher.common.net import free_port
from launcher.errors import UserError
from launcher.loggers import remote_sender
from launcher.loggers.mlflow import MLflowLogger
from launcher.loggers.sender import Sender, flatten_params
from launcher.loggers.spool import Spool, replay_spool
from launcher.tracking.run_info import is_secret_key

REPO = Path(__file__).resolve().parents[2]


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    points = client(uri).get_metric_history(run_id, key)
    return sorted((m.step, m.value) for m in points)


def value(step: int) -> float:
    return 1.0 / (step + 1)  # deterministic, like a replayed training step


def new_logger(uri: str, tmp_path: Path, **kwargs) -> MLflowLogger:
    kwargs.setdefault("log_system_metrics", False)
    kwargs.setdefault("retry_interval", 0.5)
    return MLflowLogger(
        f"exp-{uuid.uuid4().hex[:8]}",
        run_name="r",
        tracking_uri=uri,
        save_dir=str(tmp_path),
        **kwargs,
    )


def find_run(uri: str, experiment: str):
    found = client(uri).get_experiment_by_name(experiment)
    assert found is not None, f"experiment {experiment} was never created"
    runs = client(uri).search_runs([found.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def test_secret_keys_are_recognised_by_word():
    assert all(
        map(
            is_secret_key,
            [
                "hf_token",
                "db.password",
                "apiKey",
                "api_key",
                "AWS_SECRET",
                "ssh.key",
                "passwd",
                "gcp.credentials",
            ],
        )
    )
    assert not any(map(is_secret_key, ["monkey", "max_tokens", "tokenizer", "keys", "lr"]))
    flat = flatten_params({"opt": {"lr": 0.1, "betas": (0.9, 0.99)}, "x": "v" * 7000})
    assert flat["opt.lr"] == "0.1" and flat["opt.betas"] == "(0.9, 0.99)"
    assert len(flat["x"]) == 6000


def test_params_tags_metrics_artifacts_reach_the_server(live_mlflow_server, tmp_path):
    uri = live_mlflow_server.uri
    logger = new_logger(uri, tmp_path, tags={"team": "vision"})
    logger.log_hyperparams(
        {
            "model": {"width": 128, "hf_token": "hf_secret"},
            "api_key": "k",
            "monkey": "ok",
            "db": {"password": "p"},
        }
    )
    logger.set_tags({"launcher.backend": "local", "git.commit": "abc123"})
    for step in range(30):
        logger.log_metrics({"train/loss": value(step), "lr": 0.1}, step=step)
    logger.log_metrics({"grad_norm": math.nan, "scale": math.inf}, step=30)  # JSON has no NaN
    logger.log_metrics({"oops": "not a number"}, step=30)  # dropped with a warning
    artifact = tmp_path / "recipe.py"
    artifact.write_text("print('hi')\n")
    logger.log_artifact(str(artifact), artifact_path="code")
    logger.log_artifact(str(tmp_path / "missing.txt"))  # rejected with a warning, not retried
    logger.finalize("FINISHED")

    run = client(uri).get_run(logger.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "r"
    assert run.data.params == {
        "model.width": "128",
        "model.hf_token": "***",
        "api_key": "***",
        "monkey": "ok",
        "db.password": "***",
    }
    assert run.data.tags["team"] == "vision" and run.data.tags["git.commit"] == "abc123"
    assert history(uri, logger.run_id, "train/loss") == [(s, value(s)) for s in range(30)]
    assert math.isnan(run.data.metrics["grad_norm"]) and run.data.metrics["scale"] > 1e300
    assert "oops" not in run.data.metrics
    assert [a.path for a in client(uri).list_artifacts(logger.run_id, "code")] == ["code/recipe.py"]
    assert logger.experiment_id == run.info.experiment_id
    assert not Spool(str(tmp_path)).has_pending()  # everything spooled was sent and acked


def test_metrics_to_a_server_take_the_rest_endpoint_and_resends_are_dropped(
    live_mlflow_server, monkeypatch
):
    uri = live_mlflow_server.uri
    sender = Sender(uri)
    sender.apply({"op": "open", "run": "pending-rest", "experiment": f"exp-{uuid.uuid4().hex[:8]}"})
    run_id = sender.resolve("pending-rest")

    def no_client_batches(*args, **kwargs):
        raise AssertionError("metrics went through MlflowClient.log_batch, not the REST endpoint")

    monkeypatch.setattr(sender.client, "log_batch", no_client_batches)
    rows = [["loss", value(s), 1_700_000_000_000 + s, s] for s in range(5)]
    assert sender.apply({"op": "metrics", "run": run_id, "metrics": rows}) is True
    assert history(uri, run_id, "loss") == [(s, value(s)) for s in range(5)]
    # A new sender (a restarted job) learns from the server which steps it holds already.
    again = Sender(uri)
    assert again.apply({"op": "metrics", "run": run_id, "metrics": rows[2:]}) is False
    assert again.apply({"op": "metrics", "run": run_id, "metrics": rows + [["loss", 9.0, 1, 5]]})
    assert history(uri, run_id, "loss") == [(s, value(s)) for s in range(5)] + [(5, 9.0)]


def test_default_store_is_sqlite_in_save_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    logger = MLflowLogger("local", save_dir=str(tmp_path / "outputs"), system_metrics_interval=0.2)
    logger.log_hyperparams({"seed": 1})
    logger.log_metrics({"loss": 0.5}, step=0)
    artifact = tmp_path / "config.yaml"
    artifact.write_text("a: 1\n")
    logger.log_artifact(str(artifact))
    assert logger.run_id is not None  # the database and the run exist: sampling has begun
    time.sleep(1.5)  # a few system-metric samples
    logger.finalize("FAILED")

    assert logger.tracking_uri == f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    run = client(logger.tracking_uri).get_run(logger.run_id)
    assert run.info.status == "FAILED" and run.data.params == {"seed": "1"}
    assert run.data.metrics["loss"] == 0.5
    assert {"system/cpu_percent", "system/memory_percent"} <= set(run.data.metrics)
    assert list((tmp_path / "outputs" / "mlartifacts").rglob("config.yaml"))


def test_malformed_uri_is_a_user_error_naming_the_fix(tmp_path):
    with pytest.raises(UserError, match="http://localhost:5000"):
        MLflowLogger(tracking_uri="localhost:5000", save_dir=str(tmp_path))
    with pytest.raises(UserError, match="unknown scheme 'htp'"):
        MLflowLogger(tracking_uri="htp://host:5000", save_dir=str(tmp_path))
    with pytest.raises(UserError, match="bad port"):
        MLflowLogger(tracking_uri="http://host:99999999", save_dir=str(tmp_path))


def test_dead_server_never_stalls_log_metrics(tmp_path, caplog):
    logger = new_logger(f"http://127.0.0.1:{free_port()}", tmp_path)
    caplog.set_level(logging.WARNING, "launcher.loggers.mlflow")
    slowest = 0.0
    for step in range(20000):
        start = time.perf_counter()
        logger.log_metrics({"loss": value(step)}, step=step)
        slowest = max(slowest, time.perf_counter() - start)
    logger.flush()
    # Not a benchmark (bench/mlflow_logging.py is): a call that waited on the dead server's
    # connect/retry takes 5 s or more (its timeouts); 2 s leaves room for a loaded 2-core CI
    # machine, where the GIL alone held one call 0.93 s once.
    assert slowest < 2.0, f"a log_metrics call blocked for {slowest:.2f} s"
    assert logger.run_id is None and logger.state_dict()["run_ref"].startswith("pending-")
    logger.finalize("FINISHED")
    offline = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(offline) == 2  # once when it went offline, once at finalize naming `launch sync`
    assert "launch sync" in offline[-1].getMessage()
    assert Spool(str(tmp_path)).has_pending()


def test_outage_mid_run_every_step_lands_once(live_mlflow_server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "launcher.loggers.mlflow")
    uri, logger = live_mlflow_server.uri, new_logger(live_mlflow_server.uri, tmp_path)
    logger.log_hyperparams({"lr": 0.1})
    for step in range(50):
        logger.log_metrics({"loss": value(step)}, step=step)
    logger.flush()
    run_id = logger.run_id
    live_mlflow_server.stop()
    for step in range(50, 150):
        logger.log_metrics({"loss": value(step)}, step=step)
        if step % 25 == 0:
            logger.flush()  # returns: the records are spooled, not waiting for the server
    logger.set_tags({"phase": "during-outage"})
    logger.flush()
    assert Spool(str(tmp_path)).has_pending()
    live_mlflow_server.start()
    for step in range(150, 200):
        logger.log_metrics({"loss": value(step)}, step=step)
    logger.finalize("FINISHED")

    assert history(uri, run_id, "loss") == [(s, value(s)) for s in range(200)]
    run = client(uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["phase"] == "during-outage"
    assert not Spool(str(tmp_path)).has_pending()
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1


def test_server_down_at_start_creates_the_run_on_reconnect(live_mlflow_server, tmp_path):
    uri = live_mlflow_server.uri
    live_mlflow_server.stop()
    logger = new_logger(uri, tmp_path)
    logger.log_hyperparams({"batch_size": 64})
    for step in range(40):
        logger.log_metrics({"loss": value(step)}, step=step)
    logger.flush()
    assert logger.run_id is None
    live_mlflow_server.start()
    deadline = time.monotonic() + 30
    while logger.run_id is None and time.monotonic() < deadline:
        time.sleep(0.2)  # the background thread replays the spool and adopts the new id
    assert logger.run_id is not None
    for step in range(40, 60):
        logger.log_metrics({"loss": value(step)}, step=step)
    logger.finalize("FINISHED")

    run = find_run(uri, logger.experiment_name)
    assert run.info.run_id == logger.run_id and run.info.status == "FINISHED"
    assert run.data.params == {"batch_size": "64"}
    assert history(uri, logger.run_id, "loss") == [(s, value(s)) for s in range(60)]


def test_replay_spool_uploads_a_run_that_never_reached_the_server(live_mlflow_server, tmp_path):
    uri = live_mlflow_server.uri
    live_mlflow_server.stop()
    logger = new_logger(uri, tmp_path)
    for step in range(25):
        logger.log_metrics({"acc": step / 25}, step=step)
    logger.finalize("FINISHED")  # still down: everything stays in the spool
    live_mlflow_server.start()

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["sync", str(tmp_path)])  # = replay_spool(run_dir)
    assert result.exit_code == 0 and "sent" in result.output, result.output
    assert replay_spool(str(tmp_path)) == 0  # exactly once
    run = find_run(uri, logger.experiment_name)
    assert run.info.status == "FINISHED"
    assert history(uri, run.info.run_id, "acc") == [(s, s / 25) for s in range(25)]


def run_child(script: str, **fmt) -> subprocess.CompletedProcess:
    code = textwrap.dedent(script).format(**fmt)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )


CHILD = """
    import json, os
    from launcher.loggers.mlflow import MLflowLogger
    logger = MLflowLogger({experiment!r}, tracking_uri={uri!r}, save_dir={save_dir!r},
                          log_system_metrics=False, retry_interval=0.5)
    for step in range({steps}):
        logger.log_metrics({{"loss": 1.0 / (step + 1)}}, step=step)
        if step == {checkpoint_step}:
            open({state_path!r}, "w").write(json.dumps(logger.state_dict()))
    logger.flush()
    os._exit(1)  # crash: no finalize
"""


def crashed_job(uri: str, tmp_path: Path, checkpoint_step: int) -> tuple[str, dict]:
    """Run CHILD (30 steps, logger state saved at `checkpoint_step`, then a crash); returns its
    experiment name and the saved logger state."""
    experiment, state_path = f"exp-{uuid.uuid4().hex[:8]}", tmp_path / "s"
    child = run_child(CHILD, experiment=experiment, uri=uri, save_dir=str(tmp_path), steps=30,
                      checkpoint_step=checkpoint_step, state_path=str(state_path))  # fmt: skip
    assert child.returncode == 1, child.stderr
    return experiment, json.loads(state_path.read_text())


def test_resume_drops_the_steps_the_crashed_job_already_logged(live_mlflow_server, tmp_path):
    uri = live_mlflow_server.uri
    experiment, state = crashed_job(uri, tmp_path, checkpoint_step=14)
    assert state["watermarks"] == {"loss": 14}

    logger = new_logger(uri, tmp_path)
    logger.load_state_dict(state)
    for step in range(15, 40):  # the resumed job replays 15..29, then goes on
        logger.log_metrics({"loss": value(step)}, step=step)
    logger.finalize("FINISHED")

    # The checkpoint may hold the run's id or, taken before the run existed, its placeholder:
    # either way the resumed job continues that one run.
    run = find_run(uri, experiment)
    assert logger.run_id == run.info.run_id and state["run_id"] in (None, run.info.run_id)
    assert history(uri, run.info.run_id, "loss") == [(s, value(s)) for s in range(40)]
    assert run.info.status == "FINISHED"


def test_resume_with_a_spooled_crash_and_the_server_down(live_mlflow_server, tmp_path):
    uri = live_mlflow_server.uri
    live_mlflow_server.stop()  # the crashed job never reached the server: all 30 steps spooled
    experiment, state = crashed_job(uri, tmp_path, checkpoint_step=19)
    assert state["run_id"] is None and state["run_ref"].startswith("pending-")

    logger = new_logger(uri, tmp_path)
    logger.load_state_dict(state)
    for step in range(20, 45):
        logger.log_metrics({"loss": value(step)}, step=step)
    live_mlflow_server.start()
    logger.finalize("FINISHED")

    run = find_run(uri, experiment)
    assert run.info.run_id == logger.run_id and run.info.status == "FINISHED"
    assert history(uri, run.info.run_id, "loss") == [(s, value(s)) for s in range(45)]


def test_state_dict_rules(tmp_path):
    logger = new_logger(f"http://127.0.0.1:{free_port()}", tmp_path)
    with pytest.raises(ValueError, match="valid"):
        logger.load_state_dict({"run_id": "x", "typo": 1})
    logger.log_metrics({"loss": 1.0}, step=0)
    with pytest.raises(RuntimeError, match="before any logging"):
        logger.load_state_dict({"run_id": "x"})
    logger.finalize("KILLED")


def test_state_dict_never_waits_for_the_run_and_its_placeholder_resumes_it(tmp_path):
    """A checkpoint taken before the (cold) sender process has created the run holds the
    placeholder; the resumed logger finds and continues that same run."""
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"  # a new store: seconds to set up
    experiment = f"exp-{uuid.uuid4().hex[:8]}"
    first = MLflowLogger(experiment, tracking_uri=uri, save_dir=str(tmp_path / "a"),
                         log_system_metrics=False)  # fmt: skip
    first.log_metrics({"loss": value(0)}, step=0)
    started = time.monotonic()
    state = first.state_dict()
    assert time.monotonic() - started < 0.5
    assert state["run_id"] is None and state["run_ref"].startswith("pending-")
    assert state["watermarks"] == {"loss": 0}
    first.finalize("KILLED")  # the job died after that checkpoint (its run now exists)
    remote_sender._close_children()  # the resumed job is a new process, with a new sender

    second = MLflowLogger(experiment, tracking_uri=uri, save_dir=str(tmp_path / "b"),
                          log_system_metrics=False)  # fmt: skip
    second.load_state_dict(state)
    second.log_metrics({"loss": value(0)}, step=0)  # already logged: dropped
    second.log_metrics({"loss": value(1)}, step=1)
    second.finalize("FINISHED")
    assert second.run_id == first.run_id
    run = client(uri).get_run(second.run_id)
    assert run.info.status == "FINISHED"
    assert history(uri, second.run_id, "loss") == [(0, value(0)), (1, value(1))]


# -- Lightning's MLFlowLogger ---------------------------------------------------------------


def test_lightning_spelling_defaults_prefix_and_client(tmp_path, monkeypatch):
    from argparse import Namespace

    from mlflow.tracking import MlflowClient

    from launcher.loggers import MLFlowLogger

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    logger = MLFlowLogger(run_name="r", tags={"team": "vision"}, prefix="fold1",
                          log_system_metrics=False)  # fmt: skip
    assert logger.tracking_uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"  # ./mlruns
    assert logger.save_dir == str(tmp_path / "mlruns")
    logger.log_hyperparams(Namespace(lr=0.1, seed=3))
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.log_metrics({"loss": 0.25}, step=1)
    client = logger.experiment
    assert isinstance(client, MlflowClient)
    assert (logger.name, logger.version) == (logger.experiment_id, logger.run_id)
    logger.finalize("success")  # Lightning's spelling of FINISHED

    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "r"
    assert client.get_experiment(run.info.experiment_id).name == "lightning_logs"
    assert run.data.params == {"lr": "0.1", "seed": "3"} and run.data.tags["team"] == "vision"
    assert history(logger.tracking_uri, logger.run_id, "fold1-loss") == [(0, 0.5), (1, 0.25)]


def test_run_id_continues_a_run_and_synchronous_waits_for_the_store(tmp_path):
    from launcher.loggers import MLFlowLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = MLFlowLogger("e", tracking_uri=uri, save_dir=str(tmp_path), log_system_metrics=False)
    first.log_metrics({"loss": 1.0}, step=0)
    first.finalize("failed")
    assert client(uri).get_run(first.run_id).info.status == "FAILED"

    again = MLFlowLogger("e", tracking_uri=uri, save_dir=str(tmp_path), run_id=first.run_id,
                         synchronous=True, log_system_metrics=False)  # fmt: skip
    again.log_metrics({"loss": 2.0}, step=1)
    assert history(uri, first.run_id, "loss") == [(0, 1.0), (1, 2.0)]  # stored, no flush
    again.finalize("finished")
    assert again.run_id == first.run_id
    assert client(uri).get_run(first.run_id).info.status == "FINISHED"
    with pytest.raises(ValueError, match="'all'"):
        MLFlowLogger(tracking_uri=uri, save_dir=str(tmp_path), log_model="best")


def checkpoint_callback(folder: Path, names: list[str], save_top_k: int):
    """What Lightning's loggers read from a ModelCheckpoint (its documented attributes)."""
    from types import SimpleNamespace

    paths = []
    for name in names:
        path = folder / name
        path.write_bytes(name.encode())
        paths.append(str(path))
    return SimpleNamespace(
        best_model_path=paths[0], best_model_score=0.5, last_model_path=paths[-1],
        current_score=0.75, best_k_models={p: 0.5 for p in paths[:-1]}, monitor="val_loss",
        mode="min", save_last=True, save_top_k=save_top_k, save_weights_only=False,
    )  # fmt: skip


def artifacts(uri: str, run_id: str) -> dict[str, list[str]]:
    c = client(uri)
    return {
        top.path: sorted(a.path.split("/", 1)[1] for a in c.list_artifacts(run_id, top.path))
        for top in c.list_artifacts(run_id)
    }


@pytest.mark.parametrize("log_model", [True, "all"])
def test_log_model_uploads_the_checkpoints(tmp_path, log_model):
    from launcher.loggers import MLFlowLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = MLFlowLogger("e", tracking_uri=uri, save_dir=str(tmp_path), log_model=log_model,
                          log_system_metrics=False)  # fmt: skip
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    callback = checkpoint_callback(ckpts, ["epoch=0-step=2.ckpt", "last.ckpt"], save_top_k=1)
    logger.after_save_checkpoint(callback)
    logger.flush()
    uploaded_at_once = artifacts(uri, logger.run_id)
    logger.finalize("success")

    expected = {
        "epoch=0-step=2": ["aliases.txt", "epoch=0-step=2.ckpt", "metadata.yaml"],
        "last": ["aliases.txt", "last.ckpt", "metadata.yaml"],
    }
    assert uploaded_at_once == (expected if log_model == "all" else {})
    assert artifacts(uri, logger.run_id) == expected
    folder = Path(logger.spool.directory) / "checkpoint-metadata"
    assert (folder / "epoch=0-step=2" / "aliases.txt").read_text() == "['latest', 'best']"
    metadata = yaml.safe_load((folder / "last" / "metadata.yaml").read_text())
    assert metadata["score"] == 0.75 and metadata["Checkpoint"]["monitor"] == "val_loss"


def test_logging_after_finalize_continues_the_run_and_exit_restores_its_status(tmp_path):
    # trainer.test() after fit: the fit stage finalized the logger; the test metrics must land.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = textwrap.dedent(f"""
        from launcher.loggers import MLflowLogger
        logger = MLflowLogger("e", tracking_uri={uri!r}, save_dir={str(tmp_path)!r},
                              log_system_metrics=False)
        logger.log_metrics({{"train_loss": 1.0}}, step=0)
        logger.finalize("FINISHED")
        logger.log_metrics({{"test_loss": 2.0}}, step=1)
        print(logger.run_id)
    """)  # no second finalize: the process just ends
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]
    run = client(uri).get_run(run_id)
    assert run.data.metrics == {"train_loss": 1.0, "test_loss": 2.0}
    assert run.info.status == "FINISHED"


def test_a_short_run_gets_system_metrics_and_other_nodes_reach_mlflow(tmp_path, monkeypatch):
    """Rank 0's logger samples soon after start (short runs had none) and logs what the other
    nodes' first processes wrote into the run dir as system/node<N>/<name>."""
    from launcher.loggers.system_metrics import NodeMetricsWriter

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "run"
    node1 = NodeMetricsWriter(str(run_dir), node=1, interval=0.2)
    logger = MLflowLogger("nodes", save_dir=str(tmp_path), spool_dir=str(run_dir))
    logger.log_metrics({"loss": 0.5}, step=0)
    assert logger.run_id is not None
    time.sleep(0.8)
    node1.close()
    logger.finalize("FINISHED")  # the last sample, and the other nodes' newest, go out first
    metrics = client(logger.tracking_uri).get_run(logger.run_id).data.metrics
    assert {"system/cpu_percent", "system/node1/cpu_percent", "system/node1/memory_percent"} <= (
        set(metrics)
    )


def test_node_metrics_reader_returns_each_whole_line_once(tmp_path):
    from launcher.loggers.system_metrics import NodeMetricsReader, node_metrics_path

    path = node_metrics_path(str(tmp_path), 2)
    path.parent.mkdir()
    path.write_text('{"time": 1.0, "values": {"system/cpu_percent": 5}}\n{"time": 2.0, "val')
    reader = NodeMetricsReader(str(tmp_path))
    assert reader.new_samples() == [(1.0, {"system/node2/cpu_percent": 5.0})]
    assert reader.new_samples() == []  # the partial line waits
    with open(path, "a") as f:
        f.write('ues": {"system/cpu_percent": 7}}\n')
    assert reader.new_samples() == [(2.0, {"system/node2/cpu_percent": 7.0})]


def test_the_run_ref_tag_is_hidden_from_the_mlflow_ui(tmp_path):
    # MLflow's UI lists a run's tags through Utils.getVisibleTagValues, which drops keys that
    # start with "mlflow." (its system tags): the placeholder ref must not be a user-visible tag.
    from launcher.loggers import MLFlowLogger
    from launcher.loggers.sender import RUN_REF_TAG

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = MLFlowLogger("e", tracking_uri=uri, save_dir=str(tmp_path), log_system_metrics=False)
    logger.log_metrics({"loss": 1.0}, step=0)
    ref = logger.state_dict()["run_ref"]
    logger.finalize("success")
    tags = client(uri).get_run(logger.run_id).data.tags
    assert tags[RUN_REF_TAG] == ref and ref.startswith("pending-")
    visible = {key: value for key, value in tags.items() if not key.startswith("mlflow.")}
    assert ref not in visible.values() and not any("run_ref" in key for key in visible), visible
    (found,) = client(uri).search_runs(["0", "1"], f"tags.`{RUN_REF_TAG}` = '{ref}'")
    assert found.info.run_id == logger.run_id
