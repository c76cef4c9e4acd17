"""Errors raised while a run trains reach the user as one paragraph and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.resume_harness import launch_cli  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY = str(REPO / "tests" / "recipes" / "tiny.py")


def _assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    for needle in needles:
        assert needle in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_fp8_on_cpu_is_a_clear_error(tmp_path: Path) -> None:
    result = launch_cli(tmp_path, TINY, "--precision", "fp8", "--max-steps", "1")
    _assert_user_error(result, "compute capability >= 8.9", "bf16-mixed")


def test_monitored_metric_never_logged_lists_the_logged_ones(tmp_path: Path) -> None:
    recipe = tmp_path / "monitored.py"
    recipe.write_text(
        Path(TINY).read_text() + "\n\nclass Monitored(TinyModel):\n"
        "    def configure_callbacks(self):\n"
        "        from launcher.callbacks import EarlyStopping\n"
        "        return [EarlyStopping(monitor='val_accuracy')]\n"
    )
    result = launch_cli(tmp_path, str(recipe), "--module", "Monitored", "--max-epochs", "1")
    _assert_user_error(result, "val_accuracy", "val_acc", "train_loss")


def test_recipe_problems_name_the_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("from launcher import Module\n\nclass M(Module)\n    pass\n")
    _assert_user_error(launch_cli(tmp_path, str(broken)), f"{broken}:3")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    _assert_user_error(launch_cli(tmp_path, str(empty)), "defines no Module")
    two = tmp_path / "two.py"
    two.write_text(Path(TINY).read_text() + "\n\nclass Other(TinyModel):\n    pass\n")
    _assert_user_error(launch_cli(tmp_path, str(two)), "TinyModel", "Other", "--module")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = launch_cli(tmp_path, TINY, "--precision", "fp8", "--max-steps", "1", "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_a_preemption_checkpoint_exits_with_the_requeue_code(tmp_path: Path) -> None:
    """`fit` raises `RequeueRequested` after its signal checkpoint; the worker returns 3."""
    from launcher import worker
    from launcher.errors import REQUEUE_EXIT_CODE
    from tests.resume_harness import make_spec, newest_step

    recipe = tmp_path / "preempted.py"
    recipe.write_text(
        Path(TINY).read_text() + "\n\nclass Preempted(TinyModel):\n"
        "    def training_step(self, batch, batch_idx):\n"
        "        import os, signal\n"
        "        if self.global_step == 3:\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "        return super().training_step(batch, batch_idx)\n"
    )
    spec = make_spec(tmp_path / "out", "preempted", recipe=str(recipe), module="Preempted",
                     overrides={"trainer.logger": "false"})  # fmt: skip
    assert worker.main(spec.spec_path) == REQUEUE_EXIT_CODE
    assert newest_step(spec) == 4  # the step the signal arrived in, checkpointed


def test_a_single_process_run_keeps_a_log_that_launch_logs_prints(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("LAUNCHER_HOME", str(tmp_path / "home"))
    result = launch_cli(tmp_path, TINY, "--max-steps", "4", "--name", "one",
                        "--set", "trainer.enable_progress_bar=true")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "out" / "tiny" / "one" / "logs" / "rank0.log").read_text()
    assert "run one FINISHED in" in log and "\x1b[" not in log
    shown = subprocess.run([sys.executable, "-m", "launcher.cli.app", "logs", "one"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "run one FINISHED in" in shown.stdout and "epoch 0" in shown.stdout


_PRESTART = """
import sys, time
from launcher.spec import LaunchSpec
from launcher import worker
from launcher.loggers import remote_sender
spec = LaunchSpec.read(sys.argv[1])
worker._prestart_mlflow_sender(spec)
children = dict(remote_sender._children)
print(sorted(children), "torch" in sys.modules, [c.alive() for c in children.values()])
"""


def test_rank_zero_starts_the_mlflow_helper_before_importing_torch(tmp_path: Path) -> None:
    """The helper's start-up (importing mlflow, the store) overlaps the worker's; a short run's
    exit then has nothing to wait for. Unused (fast_dev_run: no logger), none is started."""
    from launcher.spec import LaunchSpec

    printed = []
    for name, fast_dev_run in (("run", 0), ("dev", 1)):
        spec = LaunchSpec(recipe=TINY, run_dir=str(tmp_path / "out" / "tiny" / name), name=name,
                          experiment="tiny", fast_dev_run=fast_dev_run)  # fmt: skip
        spec.write()
        done = subprocess.run([sys.executable, "-c", _PRESTART, spec.spec_path], cwd=REPO,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        printed.append(done.stdout.strip())
    store = f"sqlite:///{(tmp_path / 'out').resolve() / 'mlflow.db'}"
    assert printed == [f"[{store!r}] False [True]", "[] False []"]
