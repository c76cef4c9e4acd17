"""What a run records about itself: tags (git commit, recipe hash, backend, host), masked params.

    tags = run_tags("recipes/mnist.py", backend="slurm", job_id="4242", restarts=0)
    params = mask_secrets(flatten({"optimizer": {"lr": 0.01}, "hf_token": "hf_x"}))
    # {"optimizer.lr": 0.01, "hf_token": "***"}

Used by the runtime (`launcher.train.run_record`: what loggers hear) and by
`launcher.loggers.sender` (`flatten_params`, `clean_tags`: params and tags as MLflow takes them).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

# The one secret rule lives in launcher.common.secrets, the state tags in tags.py; these
# names stay importable from here.
from launcher.common.secrets import MASK, is_secret_key, mask_secrets
from launcher.tracking.tags import END_REASON_TAG, LOST_STATE, RUN_DIR_TAG, STATE_TAG

GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own: its UI links the commit

__all__ = ["END_REASON_TAG", "LOST_STATE", "MASK", "RUN_DIR_TAG", "STATE_TAG", "file_sha256",
           "flatten", "git_info", "is_secret_key", "mask_secrets", "run_tags"]  # fmt: skip


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def git_info(path: str) -> dict[str, str]:
    """Commit and dirtiness of the git work tree holding `path` ({} outside git).

    Safe to call from a helper thread while the training thread forks DataLoader workers: git
    runs through posix_spawn (`close_fds=False`) and writes to a temporary file, so a worker
    forked meanwhile holds no pipe or error pipe that this call would wait on.
    """
    folder = str(Path(path).resolve().parent)
    # One git process for both facts (each start holds our GIL for a moment): porcelain v2
    # heads its output with "# branch.oid <commit>"; every other line is a changed file.
    status = _git(folder, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return {}
    lines = status.splitlines()
    commit = next((ln.split()[2] for ln in lines if ln.startswith("# branch.oid ")), None)
    if commit is None or commit == "(initial)":  # no commit yet
        return {}
    dirty = any(ln and not ln.startswith("#") for ln in lines)
    info = {GIT_COMMIT_TAG: commit, "launcher.git_dirty": str(dirty)}
    branch = next((ln.split()[2] for ln in lines if ln.startswith("# branch.head ")), None)
    if branch and branch != "(detached)":
        info["mlflow.source.git.branch"] = branch
    return info


def _git(folder: str, *args: str) -> str | None:
    """`git -C folder args...` output, or None when it fails (not a repository, no git)."""
    git = shutil.which("git")  # an absolute path: posix_spawn is used only for those
    if git is None:
        return None
    with tempfile.TemporaryFile() as out:
        try:
            done = subprocess.run([git, "-C", folder, *args], stdout=out,
                                  stderr=subprocess.DEVNULL, timeout=5, close_fds=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        if done.returncode != 0:
            return None
        out.seek(0)
        return out.read().decode(errors="replace")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (containers)
        return str(os.getuid())


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 4 MiB blocks (checkpoints can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def run_tags(
    recipe_path: str | None, backend: str, job_id: str | None, restarts: int
) -> dict[str, str]:
    """Tags every run carries: recipe, its hash, git state, backend, job, requeues, host, and
    MLflow's own `mlflow.source.*` / `mlflow.user`, which its UI shows in the runs table."""
    tags = {
        "launcher.backend": backend,
        "launcher.host": socket.gethostname(),
        "launcher.requeue_count": str(restarts),
        "mlflow.source.type": "LOCAL" if backend == "local" else "JOB",
        "mlflow.user": _user(),
    }
    if job_id and backend != "local":  # the handle people type: `launch status slurm://42`
        tags["launcher.job_id"] = f"{backend}://{job_id}"
    if recipe_path and Path(recipe_path).is_file():
        tags["mlflow.source.name"] = str(Path(recipe_path).resolve())
        tags["launcher.recipe"] = Path(recipe_path).stem
        tags["recipe.sha256"] = file_sha256(recipe_path)
        tags.update(git_info(recipe_path))
    return tags
