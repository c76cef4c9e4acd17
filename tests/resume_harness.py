"""Helpers for kill/resume tests: launch workers as subprocesses, read final states."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from launcher.callbacks import Callback
from launcher.spec import LaunchSpec
from launcher.train.checkpoint_store import CheckpointManager
from launcher.train.sharded_checkpoint import ShardedRef, load_full

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "tests" / "recipes" / "tiny.py")


def make_spec(out: Path, name: str, recipe: str = TINY, **fields: Any) -> LaunchSpec:
    overrides = fields.pop("overrides", {})
    fields.setdefault("experiment", "tiny")
    spec = LaunchSpec(recipe=recipe, run_dir=str(out / "tiny" / name), name=name,
                      overrides=overrides, **fields)  # fmt: skip
    spec.write()
    return spec


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC"))}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update({"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra})
    return env


def start_worker(spec: LaunchSpec, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "launcher.worker", spec.spec_path],
        cwd=REPO, env=worker_env(), stdout=open(log, "ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def run_worker(spec: LaunchSpec, log: Path, timeout: float = 120) -> int:
    proc = start_worker(spec, log)
    return proc.wait(timeout=timeout)


def final_state(spec: LaunchSpec) -> dict[str, Any]:
    """The finished run's last checkpoint (must be marked finished)."""
    path, state = CheckpointManager(
        str(Path(spec.run_dir) / "checkpoints" / "resume")
    ).load_latest()
    assert state["loops"]["fit_loop"]["finished"], f"{path} is not a finished run's checkpoint"
    if isinstance(state.get("state_dict"), ShardedRef):  # whole tensors, as the full format's
        state.update(load_full(state["state_dict"].dirpath))
    return state


def assert_bitwise_equal(a: Any, b: Any, where: str = "state") -> None:
    """Recursively compare tensors with torch.equal (bit-for-bit) and everything else with ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_bitwise_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_bitwise_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def logger_run(logger_state: dict[str, Any]) -> str:
    """The run a checkpoint's MLflow logger state names: its id, or (when the run did not
    exist yet as the checkpoint was taken) its placeholder, which `metric_steps` looks up."""
    return logger_state.get("run_id") or logger_state["run_ref"]


def metric_steps(out: Path, run_id: str, key: str) -> list[int]:
    """Steps of every stored value of `key` in the run (local MLflow store under `out`);
    `run_id` may be a placeholder ref (`logger_run`), found by its run_ref tag."""
    from mlflow.tracking import MlflowClient

    from launcher.loggers.sender import PENDING_PREFIX, RUN_REF_TAG

    client = MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    if run_id.startswith(PENDING_PREFIX):
        experiments = [e.experiment_id for e in client.search_experiments()]
        (run,) = client.search_runs(experiments, f"tags.`{RUN_REF_TAG}` = '{run_id}'")
        run_id = run.info.run_id
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def start_backend(spec: LaunchSpec, log: Path) -> subprocess.Popen:
    """Run `LocalBackend().submit(spec)` in a subprocess (its own session, for killpg)."""
    code = (
        "import sys; from backends.local import LocalBackend; from launcher.spec import LaunchSpec;"
        f"sys.exit(LocalBackend().submit(LaunchSpec.read({spec.spec_path!r})).extra['exit_code'])"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=worker_env(),
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def worker_pids(proc: subprocess.Popen) -> dict[int, int]:
    """global rank -> pid of the worker processes under a backend process."""
    import psutil

    ranks = {}
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            env = child.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "RANK" in env and "launcher.worker" in " ".join(child.cmdline()):
            ranks[int(env["RANK"])] = child.pid
    return ranks


def kill_tree(proc: subprocess.Popen, sig: int = 9) -> None:
    """Send `sig` to a process and all its descendants at once (a node dying)."""
    import psutil

    parent = psutil.Process(proc.pid)
    victims = [parent, *parent.children(recursive=True)]
    for p in victims:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=30)
    proc.wait()


def newest_step(spec: LaunchSpec) -> int:
    """Step of the run's newest resume checkpoint (-1 when there is none yet)."""
    entries = CheckpointManager(str(Path(spec.run_dir) / "checkpoints" / "resume")).entries()
    return entries[-1]["step"] if entries else -1


def made_progress(spec: LaunchSpec, proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Wait until this attempt wrote a new checkpoint; False if the process ended first."""
    start = newest_step(spec)
    wait_for(lambda: newest_step(spec) > start or proc.poll() is not None, timeout)
    return proc.poll() is None and newest_step(spec) > start


def launch_cli(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `launch ARGS --output-dir CWD/out` as a user would, capturing its output."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "launcher.cli.app", *args, "--output-dir", str(cwd / "out")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


class SaveAt(Callback):
    """`trainer.save_checkpoint(path)` once the run reaches step `at`, as ModelCheckpoint does."""

    def __init__(self, at: int, path: Path) -> None:
        self.at, self.path = at, path

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at and not self.path.exists():
            trainer.save_checkpoint(str(self.path))


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real small file system at `path` (`mount -t tmpfs`, as root), unmounted at the end."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill_disk(folder: Path, leave: int = 0) -> None:
    """Take all but `leave` bytes of `folder`'s file system with one file."""
    stat = os.statvfs(folder)
    with open(folder / "filler", "wb") as f, contextlib.suppress(OSError):  # full: done
        f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
