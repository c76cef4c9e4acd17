"""Exact resume: SIGKILL at random moments, SIGTERM/SIGUSR2, corrupt checkpoints, bad resumes.

Each test trains `tests/recipes/tiny.py` in worker subprocesses (`python -m launcher.worker`)
and compares the final model and optimizer state bit for bit with an uninterrupted run.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest
import torch

from launcher.errors import REQUEUE_EXIT_CODE
from launcher.loggers.sender import RUN_REF_TAG
from launcher.train.checkpoint_store import CheckpointManager
from tests.resume_harness import (
    assert_bitwise_equal,
    final_state,
    logger_run,
    made_progress,
    make_spec,
    metric_steps,
    newest_step,
    run_worker,
    start_worker,
    wait_for,
)

pytestmark = pytest.mark.slow

# 160 samples / batch 8 = 20 steps per epoch, 4 epochs; slow enough steps to be hit mid-run.
KILL_OVERRIDES = {
    "n_train": "160",
    "step_sleep": "0.04",
    "trainer.checkpoint_every_n_steps": "3",
    "trainer.max_epochs": "4",
}
TOTAL_STEPS = 80


_REFERENCES: dict[tuple, dict] = {}  # one uninterrupted run per settings, shared by the tests


def _reference(tmp_path: Path, overrides: dict[str, str], **fields) -> dict:
    """The uninterrupted run's final state. Its steps do not sleep: `step_sleep` only gives
    the kills time to land, and changes no number."""
    key = tuple(sorted({**overrides, **{f"spec.{k}": str(v) for k, v in fields.items()}}.items()))
    if key not in _REFERENCES:
        quick = {k: v for k, v in overrides.items() if k != "step_sleep"}
        spec = make_spec(tmp_path / "ref", "ref", overrides=quick, **fields)
        assert run_worker(spec, tmp_path / "ref.log") == 0, (tmp_path / "ref.log").read_text()
        _REFERENCES[key] = {**final_state(spec), "__out__": tmp_path / "ref"}  # its store
    return _REFERENCES[key]


def _compare(reference: dict, resumed: dict) -> None:
    assert_bitwise_equal(reference["state_dict"], resumed["state_dict"], "model")
    assert_bitwise_equal(reference["optimizer_states"], resumed["optimizer_states"], "optimizers")
    assert_bitwise_equal(reference["lr_schedulers"], resumed["lr_schedulers"], "lr_schedulers")
    assert reference["global_step"] == resumed["global_step"] == TOTAL_STEPS


def _run_id(state: dict) -> str:
    return logger_run(next(iter(state["launcher_loggers"].values())))


def _steps_exactly_once(out: Path, state: dict) -> None:
    steps = metric_steps(out, _run_id(state), "train_loss")
    assert steps == list(range(TOTAL_STEPS)), f"duplicated or missing steps: {steps}"


def test_sigkill_at_random_moments_resumes_bitwise(tmp_path: Path) -> None:
    reference = _reference(tmp_path, KILL_OVERRIDES)
    spec = make_spec(tmp_path / "out", "killed", overrides=KILL_OVERRIDES)
    log = tmp_path / "killed.log"
    rng = random.Random(1234)
    kills = 0
    for _attempt in range(40):
        proc = start_worker(spec, log)
        if kills < 10 and made_progress(spec, proc):
            # A random moment shortly after a checkpoint: mid-step, mid-write or mid-log.
            wait_for(lambda p=proc: p.poll() is not None, rng.uniform(0.0, 0.15))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
        break
    assert kills == 10, "the run finished before 10 kills; make steps slower"
    resumed = final_state(spec)
    _compare(reference, resumed)
    _steps_exactly_once(tmp_path / "out", resumed)
    assert log.read_text().count("resumed from") >= 5


def test_sigkill_between_mid_epoch_validations_resumes_bitwise(tmp_path: Path) -> None:
    """val_check_interval=0.25: validation every 5 of the 20 steps of an epoch. Killed right
    after checkpoints that lie between two validations, the run validates at the same steps
    as an uninterrupted one, each exactly once, and ends bit-identical."""
    overrides = {**KILL_OVERRIDES, "trainer.val_check_interval": "0.25"}
    reference = _reference(tmp_path, overrides)
    spec = make_spec(tmp_path / "out", "mid_val", overrides=overrides)
    log = tmp_path / "mid_val.log"
    kills_between = 0
    for _attempt in range(12):
        proc = start_worker(spec, log)
        if kills_between < 4 and made_progress(spec, proc):
            step = newest_step(spec)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills_between += (
                step % 5 != 0 and step > 5
            )  # resumes after a validation, before the next
            continue
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
        break
    assert kills_between == 4, "too few kills between validations; make steps slower"
    resumed = final_state(spec)
    _compare(reference, resumed)
    _steps_exactly_once(tmp_path / "out", resumed)
    val_steps = metric_steps(tmp_path / "out", _run_id(resumed), "val_loss")
    assert val_steps == list(range(4, TOTAL_STEPS, 5)), f"validations: {val_steps}"
    ref_val = metric_steps(reference["__out__"], _run_id(reference), "val_loss")
    assert ref_val == val_steps


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2])
def test_preemption_signal_checkpoints_and_requeues_without_losing_a_step(
    tmp_path: Path, sig: signal.Signals
) -> None:
    overrides = {**KILL_OVERRIDES, "trainer.async_checkpointing": "true"}
    reference = _reference(tmp_path, overrides)
    spec = make_spec(tmp_path / "out", "signalled", overrides=overrides)
    log = tmp_path / "signalled.log"
    rng = random.Random(int(sig))
    requeues = 0
    for _attempt in range(10):
        proc = start_worker(spec, log)
        if requeues < 3 and made_progress(spec, proc):
            wait_for(lambda p=proc: p.poll() is not None, rng.uniform(0.0, 0.3))
            proc.send_signal(sig)
            code = proc.wait(timeout=60)
            assert code == REQUEUE_EXIT_CODE, log.read_text()[-3000:]
            requeues += 1
            continue
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
        break
    assert requeues == 3
    text = log.read_text()
    assert text.count(f"received {sig.name}") == 3
    # Zero steps lost or repeated: each resume starts exactly where the signal checkpoint was.
    resumed = final_state(spec)
    _compare(reference, resumed)
    _steps_exactly_once(tmp_path / "out", resumed)


def test_corrupt_newest_checkpoint_falls_back_with_warning(tmp_path: Path) -> None:
    overrides = {"trainer.checkpoint_every_n_steps": "4", "trainer.keep_last_checkpoints": "3"}
    spec = make_spec(tmp_path / "out", "corrupt", overrides=overrides)
    assert run_worker(spec, tmp_path / "a.log") == 0
    manager = CheckpointManager(str(Path(spec.run_dir) / "checkpoints" / "resume"))
    entries = manager.entries()
    newest, previous = (Path(manager.dirpath) / e["file"] for e in entries[-1:-3:-1])
    size = newest.stat().st_size
    with open(newest, "r+b") as f:  # truncate
        f.truncate(size // 2)
    with pytest.warns(UserWarning, match="unusable"):
        path, state = manager.load_latest()
    assert path == str(previous)
    with open(previous, "r+b") as f:  # garble in place, same size
        f.seek(size // 3)
        f.write(b"\x00garbage\xff" * 64)
    with pytest.warns(UserWarning):
        path, _ = manager.load_latest()
    assert path == str(Path(manager.dirpath) / entries[-3]["file"])
    for entry in entries:  # now every checkpoint is corrupt: a clear error, nothing deleted
        with open(Path(manager.dirpath) / entry["file"], "r+b") as f:
            f.truncate(100)
    from launcher.errors import UserError

    with pytest.raises(UserError, match="every checkpoint .* unusable"):
        manager.load_latest()
    assert all((Path(manager.dirpath) / e["file"]).exists() for e in entries)


def test_a_deleted_manifest_resumes_from_the_files_in_the_same_mlflow_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    reference = _reference(tmp_path, KILL_OVERRIDES)
    spec = make_spec(tmp_path / "out", "lost", overrides=KILL_OVERRIDES)
    log = tmp_path / "lost.log"
    proc = start_worker(spec, log)
    assert made_progress(spec, proc) and made_progress(spec, proc), log.read_text()[-3000:]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == REQUEUE_EXIT_CODE, log.read_text()[-3000:]
    resume_dir = Path(spec.run_dir) / "checkpoints" / "resume"
    kept = [e["file"] for e in CheckpointManager(str(resume_dir)).entries()]
    (resume_dir / "manifest.json").unlink()
    assert run_worker(spec, log) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert f"rebuilt it from {len(kept)} verified checkpoint file(s)" in text
    assert f"resumed from {resume_dir / kept[-1]}" in text
    resumed = final_state(spec)
    _compare(reference, resumed)
    out = tmp_path / "out"
    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    runs = client.search_runs(client.get_experiment_by_name("tiny").experiment_id)
    (only,) = runs  # one run, the one the checkpoint names (by id, or by its placeholder)
    assert _run_id(resumed) in (only.info.run_id, only.data.tags.get(RUN_REF_TAG))
    _steps_exactly_once(out, resumed)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 48 MB tmpfs at tmp_path/out: the whole output dir (run dirs and the MLflow store)."""
    import subprocess

    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(out)], check=True)
    try:
        yield out
    finally:
        subprocess.run(["umount", "-l", str(out)], check=True)


def test_a_full_disk_fails_with_one_message_keeping_the_last_good_checkpoint(
    tmp_path: Path, small_disk: Path
) -> None:
    import os

    from mlflow.tracking import MlflowClient

    overrides = {**KILL_OVERRIDES, "hidden": "20000", "trainer.checkpoint_every_n_steps": "4",
                 "trainer.keep_last_checkpoints": "1"}  # fmt: skip
    spec = make_spec(small_disk, "full", overrides=overrides)
    log = tmp_path / "full.log"
    proc = start_worker(spec, log)
    assert made_progress(spec, proc), log.read_text()[-3000:]
    resume_dir = Path(spec.run_dir) / "checkpoints" / "resume"
    # The file takes its name before the manifest lists it: wait for the manifest's entry.
    assert wait_for(lambda: "size" in CheckpointManager(str(resume_dir)).entries()[0], 60)
    (good,) = CheckpointManager(str(resume_dir)).entries()
    stat = os.statvfs(small_disk)
    # Leave room for metrics, not for another checkpoint (~4.6 MB: weights and Adam's moments).
    filler = stat.f_bavail * stat.f_frsize - good["size"] // 3
    with open(small_disk / "filler", "wb") as f:
        f.truncate(0)
        f.write(b"\0" * filler)
    assert proc.wait(timeout=120) == 1, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text, text[-5000:]
    errors = [ln for ln in text.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, text[-3000:]
    assert errors[0].startswith(f"error: out of disk space writing {resume_dir}/step-")
    assert "it needs about 4.6 MB" in errors[0] and "MB free there" in errors[0]
    assert not [p.name for p in resume_dir.iterdir() if p.name.endswith(".tmp")]
    # The newest checkpoint written before the disk filled (a save may have been in flight).
    path, state = CheckpointManager(str(resume_dir)).load_latest()
    assert f"Kept: the last good checkpoint, {path} (step {state['global_step']})" in errors[0]
    assert state["global_step"] >= good["step"]
    client = MlflowClient(tracking_uri=f"sqlite:///{small_disk}/mlflow.db")
    (run,) = client.search_runs(client.get_experiment_by_name("tiny").experiment_id)
    assert run.info.status == "FAILED"


def test_a_full_disk_under_the_spool_fails_the_run_with_one_message_and_the_store_has_it_all(
    tmp_path: Path, live_mlflow_server
) -> None:
    """The run dir's disk fills between checkpoints (the MLflow store is a server elsewhere):
    one message naming the write that failed and the last good checkpoint, exit 1, no
    traceback, the run FAILED with every logged step once."""
    from mlflow.tracking import MlflowClient

    from tests.resume_harness import fill_disk, tmpfs

    overrides = {**KILL_OVERRIDES, "step_sleep": "0.15",
                 "trainer.checkpoint_every_n_steps": "20"}  # fmt: skip
    with tmpfs(tmp_path / "out", "48m") as out:
        spec = make_spec(out, "spoolfull", overrides=overrides, experiment="spoolfull",
                         tracking_uri=live_mlflow_server.uri)  # fmt: skip
        log = tmp_path / "spoolfull.log"
        proc = start_worker(spec, log)
        assert made_progress(spec, proc), log.read_text()[-3000:]
        resume_dir = Path(spec.run_dir) / "checkpoints" / "resume"
        # Step 20 is also epoch 0's end: ModelCheckpoint's file is written in the background
        # (train/checkpoint_store.BackgroundSaver); let it land before the disk fills.
        files = Path(spec.run_dir) / "checkpoints"
        assert wait_for(lambda: any(files.glob("epoch=*.ckpt")), 60), log.read_text()[-3000:]
        fill_disk(out)
        assert proc.wait(timeout=120) == 1, log.read_text()[-3000:]
        text = log.read_text()
        assert "Traceback" not in text, text[-5000:]
        errors = [ln for ln in text.splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1, text[-3000:]
        # The first write to fail names itself: the spool's append, or, when the spool's last
        # tmpfs page still had room for the next steps' records (it is emptied whenever the
        # store has acked all of it), the next resume checkpoint. The spool's own full-disk
        # handling is pinned in tests/loggers/test_spool_durability.py.
        failed = errors[0].removeprefix("error: out of disk space writing ")
        assert failed.startswith((f"{spec.run_dir}/mlflow_", f"{resume_dir}/step-")), errors[0]
        path, state = CheckpointManager(str(resume_dir)).load_latest()
        assert f"the last good checkpoint, {path} (step {state['global_step']})" in errors[0]
        assert not [p.name for p in resume_dir.iterdir() if p.name.endswith(".tmp")]
        client = MlflowClient(tracking_uri=live_mlflow_server.uri)
        # The session's server is shared: its own experiment, apart from other tests' runs.
        (run,) = client.search_runs(client.get_experiment_by_name("spoolfull").experiment_id)
        assert run.info.status == "FAILED"
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss"))
        assert steps == list(range(len(steps))) and len(steps) > state["global_step"]


def test_resuming_a_finished_run_does_nothing(tmp_path: Path) -> None:
    spec = make_spec(tmp_path / "out", "done")
    assert run_worker(spec, tmp_path / "a.log") == 0
    before = final_state(spec)
    assert run_worker(spec, tmp_path / "b.log") == 0
    assert "already finished" in (tmp_path / "b.log").read_text()
    assert_bitwise_equal(before["state_dict"], final_state(spec)["state_dict"])
    from mlflow.tracking import MlflowClient

    # The relaunch opened no second run (it used to leave one RUNNING, without params).
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out'}/mlflow.db")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FINISHED"


def test_incompatible_resume_names_the_changed_setting(tmp_path: Path) -> None:
    overrides = {"trainer.checkpoint_every_n_steps": "2", "trainer.max_steps": "4"}
    spec = make_spec(tmp_path / "out", "compat", overrides=overrides)
    assert run_worker(spec, tmp_path / "a.log") == 0
    manager = CheckpointManager(str(Path(spec.run_dir) / "checkpoints" / "resume"))
    # Pretend the run stopped early (drop the finished checkpoint) and resume differently.
    last = manager.entries()[-1]
    (Path(manager.dirpath) / last["file"]).unlink()
    manager._write_manifest(manager.entries()[:-1])
    changed = make_spec(tmp_path / "out", "compat",
                        overrides={**overrides, "trainer.accumulate_grad_batches": "2"})  # fmt: skip
    assert run_worker(changed, tmp_path / "b.log") == 2
    assert "accumulate_grad_batches changed from 1 to 2" in (tmp_path / "b.log").read_text()
    reshaped = make_spec(tmp_path / "out", "compat", overrides={**overrides, "hidden": "8"})
    assert run_worker(reshaped, tmp_path / "c.log") == 2
    text = (tmp_path / "c.log").read_text()
    assert "no longer matches checkpoint" in text and "Traceback" not in text


def test_sigterm_resume_and_server_outage_keep_one_continuous_mlflow_run(
    tmp_path: Path, live_mlflow_server
) -> None:
    """Against a real server: a requeue continues the same run, and an outage mid-run loses
    nothing: the spool is replayed when the server is back, each step exactly once."""
    from mlflow.tracking import MlflowClient

    spec = make_spec(tmp_path / "out", "served", overrides=KILL_OVERRIDES,
                     tracking_uri=live_mlflow_server.uri)  # fmt: skip
    log = tmp_path / "served.log"
    proc = start_worker(spec, log)
    assert made_progress(spec, proc), log.read_text()[-3000:]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == REQUEUE_EXIT_CODE, log.read_text()[-3000:]
    client = MlflowClient(tracking_uri=live_mlflow_server.uri)
    (run,) = client.search_runs(client.get_experiment_by_name("tiny").experiment_id)
    assert run.data.tags["launcher.state"] == "waiting for requeue"

    proc = start_worker(spec, log)  # the requeued job; the server dies under it, then returns
    assert made_progress(spec, proc)
    proc.send_signal(signal.SIGSTOP)  # a loaded machine stops the server slowly: the run
    live_mlflow_server.stop()  # must not finish meanwhile, or nothing ran during the outage
    proc.send_signal(signal.SIGCONT)
    assert made_progress(spec, proc)  # training goes on while the server is down
    proc.send_signal(signal.SIGSTOP)  # hold training until the server is back, so the
    live_mlflow_server.start()  # replay during the run is what this test exercises
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    runs = client.search_runs(client.get_experiment_by_name("tiny").experiment_id)
    assert [r.info.run_id for r in runs] == [run.info.run_id]  # one run, continued
    finished = client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss"))
    assert steps == list(range(TOTAL_STEPS))
    assert finished.data.tags["launcher.resumes"] == "1"


def _tiny_trainer(tmp_path: Path, **kwargs):
    from launcher import Trainer
    from launcher.cli.recipe import load_recipe

    recipe = load_recipe(str(Path(__file__).parents[1] / "recipes" / "tiny.py"))
    trainer = Trainer(**{**recipe.trainer_defaults, "logger": False, "seed": 0,
                         "run_dir": str(tmp_path / "run"), **kwargs})  # fmt: skip
    return trainer, recipe.module_cls


def test_checkpoint_keys_nobody_consumes_are_an_error(tmp_path: Path) -> None:
    from launcher.errors import UserError

    trainer, model_cls = _tiny_trainer(tmp_path, max_steps=3)
    trainer.fit(model_cls())
    path = tmp_path / "extra.ckpt"
    trainer.save_checkpoint(str(path))
    state = torch.load(path, weights_only=True)
    state["mystery_part"] = {"x": 1}
    state["loops"]["fit_loop"]["finished"] = False
    torch.save(state, path)
    again, _ = _tiny_trainer(tmp_path / "again", max_steps=6)
    with pytest.raises(UserError, match=r"keys nothing consumed: \['mystery_part'\]"):
        again.fit(model_cls(), ckpt_path=str(path))


def test_wall_clock_checkpoints(tmp_path: Path) -> None:
    trainer, model_cls = _tiny_trainer(tmp_path, max_epochs=1, checkpoint_every_seconds=0.05,
                                       keep_last_checkpoints=100)  # fmt: skip
    trainer.fit(model_cls(step_sleep=0.02))
    steps = [e["step"] for e in trainer.checkpoints.entries()]
    assert len(steps) >= 4 and steps == sorted(steps)  # mid-epoch saves, then the final one
