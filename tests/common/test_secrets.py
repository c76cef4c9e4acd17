"""The one secret rule: key words, URL credentials; and a run that uploads none of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launcher.common.secrets import MASK, is_secret_key, mask_text, mask_tree, mask_value
from tests.resume_harness import launch_cli

SECRETS = ("SeCrEt-In-Url-1", "SeCrEt-Set-2", "SeCrEt-Pass-3")


def test_secret_words_and_harmless_names() -> None:
    secret = ["hf_token", "db.password", "db_passphrase", "pwd", "PASSWD", "apiKey", "api_key",
              "key", "ssh.key", "access_token", "AWS_SECRET_ACCESS_KEY", "gcp.credentials_json",
              "client_secret", "my-Secret-name"]  # fmt: skip
    harmless = ["monitor_key", "sort_key", "pad_token", "pad_token_id", "eos_token", "max_tokens",
                "tokenizer", "keys", "key_size", "monkey", "lr", "token_id"]  # fmt: skip
    assert [k for k in secret if not is_secret_key(k)] == []
    assert [k for k in harmless if is_secret_key(k)] == []


def test_url_userinfo_and_secret_query_parameters_are_masked() -> None:
    assert mask_text("postgresql://u:pw@db.host:5432/x") == f"postgresql://{MASK}@db.host:5432/x"
    assert mask_text("https://TOKEN@github.com/o/r") == f"https://{MASK}@github.com/o/r"
    assert mask_text("see http://h/a?token=abc&page=2") == f"see http://h/a?token={MASK}&page=2"
    assert mask_text("http://127.0.0.1:5000") == "http://127.0.0.1:5000"  # nothing to hide
    assert mask_text("launch r.py --set model.api_key=sk-1 --set lr=0.1 'x.pwd=a b'") == (
        f"launch r.py --set model.api_key={MASK} --set lr=0.1 'x.pwd={MASK}'"
    )
    assert mask_value("db.password", 1234) == MASK and mask_value("lr", 0.1) == 0.1
    tree = {"overrides": {"model.api_key": "k", "model.url": "mysql://a:b@h/d", "n": 3},
            "credentials": {"user": "u", "pass": "p"}, "list": ["x://u:p@h"]}  # fmt: skip
    assert mask_tree(tree) == {
        "overrides": {"model.api_key": MASK, "model.url": f"mysql://{MASK}@h/d", "n": 3},
        "credentials": MASK, "list": [f"x://{MASK}@h"],
    }  # fmt: skip


RECIPE = """
from tests.recipes.tiny import TinyModel


class WithSecrets(TinyModel):
    def __init__(self, db_url: str = "", api_token: str = "", db_pwd: str = "",
                 hidden: int = 32, lr: float = 0.05, batch_size: int = 8, n_train: int = 96,
                 dropout: float = 0.1, num_workers: int = 0, step_sleep: float = 0.0):
        super().__init__(hidden, lr, batch_size, n_train, dropout, num_workers, step_sleep)
        self.save_hyperparameters()  # every argument, the secrets too: params must mask them
        assert "SeCrEt" in db_url and "SeCrEt" in api_token  # the model still gets them


TRAINER = dict(max_steps=3, log_every_n_steps=1, enable_progress_bar=False)
"""


@pytest.mark.slow
def test_a_secret_in_a_url_and_in_set_reaches_neither_the_store_nor_its_artifacts(
    tmp_path: Path,
) -> None:
    recipe = tmp_path / "secret_recipe.py"
    repo = str(Path(__file__).resolve().parents[2])  # the recipe imports the tests' tiny model
    recipe.write_text(f"import sys\nsys.path.insert(0, {repo!r})\n" + RECIPE)
    url = f"postgresql://admin:{SECRETS[0]}@db.example.com/prod"
    result = launch_cli(
        tmp_path, str(recipe), "--module", "WithSecrets", "--name", "s1",
        "--set", f"model.db_url={url}", "--set", f"model.api_token={SECRETS[1]}",
        "--set", f"model.db_pwd={SECRETS[2]}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    db = (out / "mlflow.db").read_bytes()
    assert b"admin" not in db and not [s for s in SECRETS if s.encode() in db]
    artifacts = [p for p in (out / "mlartifacts").rglob("*") if p.is_file()]
    (config,) = [p for p in artifacts if p.name == "launch.json"]
    assert json.loads(config.read_text())["overrides"] == {
        "model.db_url": f"postgresql://{MASK}@db.example.com/prod",
        "model.api_token": MASK, "model.db_pwd": MASK,
    }  # fmt: skip
    leaks = [(p, s) for p in artifacts for s in SECRETS if s.encode() in p.read_bytes()]
    assert leaks == []
    assert not [s for s in SECRETS if s in result.stdout + result.stderr]
    # The run's own launch.json keeps the values: a resume needs them.
    assert SECRETS[1] in (out / "secret_recipe" / "s1" / "launch.json").read_text()
