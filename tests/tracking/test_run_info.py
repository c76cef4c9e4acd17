"""Run metadata: git state, secrets masking, and calling git safely from a helper thread.

python -m pytest tests/tracking/test_run_info.py -x -q
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from launcher.tracking.run_info import git_info, mask_secrets
from tests.forking import fork_while

REPO = Path(__file__).resolve().parents[2]


def test_git_info_of_a_repository_and_of_a_plain_folder(tmp_path):
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(tmp_path / "repo")], check=True)
    repo = tmp_path / "repo"
    (repo / "recipe.py").write_text("x = 1\n")
    assert git_info(str(repo / "recipe.py")) == {}  # no commit yet: nothing to record
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "recipe.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert git_info(str(repo / "recipe.py")) == {
        "mlflow.source.git.commit": head.strip(),
        "launcher.git_dirty": "False",
        "mlflow.source.git.branch": "trunk",
    }
    (repo / "recipe.py").write_text("x = 2\n")
    assert git_info(str(repo / "recipe.py"))["launcher.git_dirty"] == "True"
    subprocess.run([*git, "add", "recipe.py"], check=True)  # staged, not committed: still dirty
    assert git_info(str(repo / "recipe.py")) == {
        "mlflow.source.git.commit": head.strip(),
        "launcher.git_dirty": "True",
        "mlflow.source.git.branch": "trunk",
    }
    (repo / "notes.txt").write_text("untracked files don't count\n")
    subprocess.run([*git, "commit", "-qm", "two"], check=True)
    assert git_info(str(repo / "recipe.py"))["launcher.git_dirty"] == "False"
    (tmp_path / "plain").mkdir()
    assert git_info(str(tmp_path / "plain" / "recipe.py")) == {}


def test_git_info_on_a_helper_thread_survives_concurrent_forks():
    """The trainer asks git for the run's tags on a helper thread while the training thread
    forks DataLoader workers. A worker forked while git starts must not hold anything git_info
    waits on (Popen's error pipe, an output pipe): here each forked process lingers 3 s."""
    timings: list[float] = []
    infos: list[dict] = []

    def ask_git() -> None:
        for _ in range(8):
            started = time.monotonic()
            infos.append(git_info(str(REPO / "recipes" / "digits.py")))
            timings.append(time.monotonic() - started)

    forked = fork_while(threading.Thread(target=ask_git))
    assert len(timings) == 8 and forked
    assert max(timings) < 2.0, f"git_info waited on a forked process: {timings}"
    assert all(info["mlflow.source.git.commit"] for info in infos)


def test_mask_secrets_hides_tokens_and_keeps_the_rest():
    masked = mask_secrets({"lr": 0.1, "hf_token": "hf_abc"})
    assert masked["lr"] == 0.1 and masked["hf_token"] != "hf_abc"


def test_run_tags_name_the_job_by_its_handle_and_carry_mlflows_own_tags(tmp_path):
    from launcher.tracking.run_info import run_tags

    recipe = tmp_path / "recipe.py"
    recipe.write_text("x = 1\n")
    ray = run_tags(str(recipe), "ray", "digits-1a2b3c", 0)
    assert ray["launcher.job_id"] == "ray://digits-1a2b3c" and ray["mlflow.source.type"] == "JOB"
    assert ray["mlflow.source.name"] == str(recipe.resolve()) and ray["mlflow.user"]
    local = run_tags(str(recipe), "local", "torchelastic-id", 0)
    assert "launcher.job_id" not in local and local["mlflow.source.type"] == "LOCAL"
